"""Test harness for ngx_http_wsgi_module (see tests/conftest.py)."""

from .server import (
    APPS_DIR, NGINX_BIN, REPO_ROOT, NginxFactory, Response, Server,
    assert_emerg_at, build_config, conf_line, inline_mode, dechunk, free_port, install_app,
    module_path, nginx_test_config, pid_alive, proc_children,
    read_until_eof, render, split_response, write_config)
from .raw import Parsed, exchange, read_all, req, url, wait_for

__all__ = [
    "APPS_DIR", "NGINX_BIN", "REPO_ROOT", "NginxFactory", "Response",
    "Server", "assert_emerg_at", "build_config", "conf_line", "inline_mode", "dechunk", "free_port",
    "install_app", "module_path", "nginx_test_config", "pid_alive",
    "proc_children", "read_until_eof", "render", "split_response",
    "write_config", "Parsed", "exchange", "read_all", "req", "url",
    "wait_for"]
