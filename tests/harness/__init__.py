"""Test harness for ngx_http_wsgi_module (see tests/conftest.py).

server.py starts and checks nginx; raw.py is the one raw HTTP client
(exchange, read_all, req, get) and response parser (Parsed) of the tests."""

from .server import (
    APPS_DIR, NGINX_BIN, REPO_ROOT, NginxFactory, Response, Server,
    assert_emerg_at, build_config, conf_line, fd_count, free_port,
    inline_mode, install_app, module_has_directive, module_path,
    subinterpreter_mode,
    nginx_test_config, pid_alive, proc_children, proc_cmdline, render,
    worker_temp_files, write_config)
from .raw import (
    Parsed, body_bytes, chunk_bytes, data_file, dechunk, exchange, get, hdrs,
    read_all, read_side, req, send, side_lines, url, wait_for, wait_stable)

__all__ = [
    "APPS_DIR", "NGINX_BIN", "REPO_ROOT", "NginxFactory", "Response",
    "Server", "assert_emerg_at", "build_config", "conf_line", "fd_count",
    "free_port", "inline_mode", "install_app", "module_has_directive",
    "module_path", "nginx_test_config", "pid_alive", "proc_children",
    "subinterpreter_mode",
    "proc_cmdline", "render", "worker_temp_files", "write_config",
    "Parsed", "body_bytes", "chunk_bytes", "data_file", "dechunk",
    "exchange", "get", "hdrs", "read_all", "read_side", "req", "send",
    "side_lines", "url", "wait_for", "wait_stable"]
