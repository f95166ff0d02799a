"""Processes and threads of applications: child processes, os.fork(),
wsgi.input from other threads, and the httpoxy header.

Each test names its mode per location (inline on the event loop, or the
thread pool "t"), so that both runs of the suite check both modes.
"""

import json
import re
import socket
import time

import pytest

from harness import read_until_eof, split_response, wait_for


POOL_MAIN = "thread_pool t threads=4;"
MODES = {"inline": "wsgi_thread_pool off;", "pool": "wsgi_thread_pool t;"}
BOTH = pytest.mark.parametrize("mode", sorted(MODES))


def loc(path, app, mode, extra=""):
    return (f"location {path} {{ wsgi_pass {{apps}}/{app}; {MODES[mode]} "
            f"{extra} }}\n")


# child processes: the worker reaps only what it started, nothing


def results(srv, path):
    r = srv.get(path, timeout=30)
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    return r.json()["results"]


@BOTH
def test_child_exit_status(nginx, mode):
    srv = nginx(main=POOL_MAIN, server=loc("/c/", "fault_child.py", mode))
    assert results(srv, "/c/run?n=20") == [3] * 20


@BOTH
def test_child_check_call_raises(nginx, mode):
    srv = nginx(main=POOL_MAIN, server=loc("/c/", "fault_child.py", mode))
    assert results(srv, "/c/check?n=20") == ["raised 1"] * 20


@BOTH
def test_child_popen_wait_after_exit(nginx, mode):
    srv = nginx(main=POOL_MAIN, server=loc("/c/", "fault_child.py", mode))
    assert results(srv, "/c/popen?n=20") == [5] * 20


@BOTH
def test_child_waitpid(nginx, mode):
    srv = nginx(main=POOL_MAIN, server=loc("/c/", "fault_child.py", mode))
    assert results(srv, "/c/waitpid?n=20") == [7] * 20


@BOTH
def test_child_killed_by_signal(nginx, mode):
    """A child that dies on a signal is the application's business: its
    status reaches the application, and nginx logs nothing about it."""
    srv = nginx(main=POOL_MAIN, server=loc("/c/", "fault_child.py", mode))
    assert results(srv, "/c/signal?n=5") == [-9] * 5
    assert "exited on signal" not in srv.error_log()
    assert "unknown process" not in srv.error_log()


# httpoxy: the Proxy header never becomes HTTP_PROXY


def env_of(srv, headers, path="/e/"):
    r = srv.get(path, headers=headers)
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    return r.json()


@BOTH
def test_httpoxy_proxy_header_dropped(nginx, mode):
    srv = nginx(main=POOL_MAIN, server=loc("/e/", "env_app.py", mode))
    # in turns with requests without it, for the environ caches
    for name in ("Proxy", "proxy", "PROXY", None, "Proxy", None):
        headers = {"X-Other": "kept"}
        if name:
            headers[name] = "http://evil.example:3128"
        env = env_of(srv, headers)
        assert "HTTP_PROXY" not in env, env
        assert env["HTTP_X_OTHER"] == "kept"
    assert "HTTP_PROXY" not in env_of(srv, {"Proxy": "a"}, "/e/?nap=1")


@BOTH
def test_httpoxy_repeated_proxy_header(nginx, mode):
    srv = nginx(main=POOL_MAIN, server=loc("/e/", "env_app.py", mode))
    raw = (b"GET /e/ HTTP/1.1\r\nHost: localhost\r\nProxy: http://a:1\r\n"
           b"Proxy: http://b:2\r\nConnection: close\r\n\r\n")
    status, _, body = split_response(srv.raw(raw))
    assert " 200 " in status, status
    env = json.loads(body)
    assert "HTTP_PROXY" not in env, env


@BOTH
@pytest.mark.parametrize("auth", ["off", "on", None])
def test_proxy_authorization_follows_pass_authorization(nginx, mode, auth):
    extra = f"wsgi_pass_authorization {auth};" if auth else ""
    srv = nginx(main=POOL_MAIN, server=loc("/e/", "env_app.py", mode, extra))
    for _ in range(3):
        env = env_of(srv, {"Proxy-Authorization": "Basic cDpx",
                           "Authorization": "Basic dTp2",
                           "Proxy": "http://evil.example:3128"})
        assert "HTTP_PROXY" not in env
        if auth == "on":
            assert env["HTTP_PROXY_AUTHORIZATION"] == "Basic cDpx"
            assert env["HTTP_AUTHORIZATION"] == "Basic dTp2"
        else:
            assert "HTTP_PROXY_AUTHORIZATION" not in env, env
            assert "HTTP_AUTHORIZATION" not in env, env


# os.fork() in an application: the child never runs the server's code


def gone(pid):
    """pid has ended: no process, or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2:].split()[0] in ("Z", "X")


@BOTH
@pytest.mark.parametrize("child", ["return", "raise", "iterate"])
def test_fork_child_returning_exits(nginx, mode, child):
    srv = nginx(main=POOL_MAIN, server=loc("/f/", "fault_fork.py", mode))
    pids = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(f"GET /f/?child={child} HTTP/1.1\r\nHost: localhost\r\n"
                  "Connection: close\r\n\r\n".encode())
        # read until EOF: whatever a child might add comes before it
        data = read_until_eof(s, 10)
        s.close()
        status, _, body = split_response(data)
        assert " 200 " in status, data
        m = re.fullmatch(rb"parent (\d+)", body)
        assert m, data
        pids.append(int(m.group(1)))
    for pid in pids:
        assert wait_for(lambda: gone(pid), 5), f"child {pid} still runs"
        assert srv.wait_log(
            r"\[error\] .*process %d forked by the application returned "
            r"into the server" % pid), srv.logs_tail()
    # and the worker serves on, and stops cleanly at teardown (SIGQUIT)
    assert srv.get("/f/?child=exit").text.startswith("parent ")
    assert srv.get("/f/?child=exit").text.endswith(" 0")
    srv.stop()


@BOTH
def test_fork_child_os_exit(nginx, mode):
    srv = nginx(main=POOL_MAIN, server=loc("/f/", "fault_fork.py", mode))
    for _ in range(10):
        r = srv.get("/f/?child=exit")
        assert r.status == 200
        assert re.fullmatch(r"parent \d+ 0", r.text), r.text
    assert "forked by the application" not in srv.error_log()
    srv.stop()
