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

from harness import (Parsed, read_all, send, subinterpreter_mode,
                     wait_for)

# CPython cannot fork beside sub-interpreters: the child hangs in
# PyOS_AfterFork_Child() (docs/guide.md, "Forking beside sub-interpreters")
pytestmark = pytest.mark.skipif(subinterpreter_mode(),
                                reason="no fork beside sub-interpreters")



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
def test_child_os_exit_2_keeps_its_status(nginx, mode):
    """The worker's os._exit() never exits with 2, which nginx's master
    takes as fatal; a process the application forks keeps its own status,
    and its exit is no crash of the worker."""
    srv = nginx(main=POOL_MAIN, server=loc("/c/", "fault_child.py", mode))
    pids = srv.worker_pids()
    assert results(srv, "/c/exit2?n=5") == [2] * 5
    assert results(srv, "/c/waitpid") == [7]
    assert srv.worker_pids() == pids
    assert "died" not in srv.error_log()


@BOTH
def test_child_multiprocessing(nginx, mode):
    srv = nginx(main=POOL_MAIN, server=loc("/c/", "fault_child.py", mode))
    assert results(srv, "/c/mp?n=5") == [4] * 5
    assert "forked by the application" not in srv.error_log()


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
    p = Parsed(srv.raw(raw))
    assert p.code == 200 and p.complete, p
    env = json.loads(p.body)
    assert "HTTP_PROXY" not in env, env


@BOTH
def test_httpoxy_configured_var_kept(nginx, mode):
    """The configuration may still set HTTP_PROXY on purpose."""
    srv = nginx(main=POOL_MAIN,
                server=loc("/e/", "env_app.py", mode,
                           "wsgi_var HTTP_PROXY http://proxy.local:3128;"))
    env = env_of(srv, {"Proxy": "http://evil.example:3128"})
    assert env["HTTP_PROXY"] == "http://proxy.local:3128"


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
    for i in range(3):
        go = srv.prefix / f"go{i}"
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(f"GET /f/?child={child}&go={go} HTTP/1.1\r\n"
                  "Host: localhost\r\nConnection: close\r\n\r\n".encode())
        # the parent's answer; then the child goes on, and whatever it
        # might add comes before EOF
        data = read_all(s, 10, until=b"\r\n\r\n")[0]
        n = int(re.search(rb"(?im)^content-length: *(\d+)", data).group(1))
        while len(data.partition(b"\r\n\r\n")[2]) < n:
            more = s.recv(65536)
            assert more, data
            data += more
        go.write_text("go")
        data += read_all(s, 10)[0]
        s.close()
        p = Parsed(data)
        assert p.code == 200 and p.rest == b"", data
        m = re.fullmatch(rb"parent (\d+)", p.body)
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


@BOTH
def test_fork_child_write(nginx, mode):
    """On a pool, write() in a forked child would wait for the parent's
    event loop: it raises OSError.  Inline it only adds to the output,
    which the child never sends: it exits when it returns."""
    srv = nginx(main=POOL_MAIN, server=loc("/f/", "fault_fork.py", mode))
    r = srv.get("/f/?child=write")
    assert r.status == 200
    m = re.fullmatch(r"parent (\d+) (\d+)", r.text)
    assert m, r.text
    if mode == "pool":
        assert m.group(2) == "3"
        assert srv.wait_log(r"\[error\] .*write\(\) or wsgi.input used in a "
                            r"process forked by the application")
    else:
        assert m.group(2) == "1"
        assert srv.wait_log(r"process %s forked by the application "
                            r"returned" % m.group(1))


# wsgi.input and write() from the application's own threads

STREAMED = "wsgi_request_buffering off;"
OTHER_THREAD = ("other RuntimeError: wsgi.input read from a thread other "
                "than the request's")


def post_slowly(srv, path, chunks, pause=0.002):
    """A chunked POST sent in pieces; returns (status line, body)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: localhost\r\n"
              "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
              .encode())
    for c in chunks:
        s.sendall(b"%x\r\n%s\r\n" % (len(c), c))
        time.sleep(pause)
    s.sendall(b"0\r\n\r\n")
    data = read_all(s, 30)[0]
    s.close()
    assert data, f"no response\n{srv.logs_tail()}"
    p = Parsed(data)
    assert p.complete and p.rest == b"", p
    return p.status_line, p.body


@BOTH
@pytest.mark.parametrize("how", ["both", "other"])
def test_streamed_input_from_threads(nginx, mode, how):
    """Inline, nginx can read the body only on the event loop's thread, the
    request's: other threads are refused.  On a pool, the threads take
    turns and share the body."""
    srv = nginx(main=POOL_MAIN,
                server=loc("/i/", "fault_input_threads.py", mode, STREAMED))
    chunks = [bytes([65 + i % 26]) * 3000 for i in range(40)]
    size = sum(map(len, chunks))
    for _ in range(5):
        status, body = post_slowly(srv, f"/i/?how={how}", chunks)
        assert " 200 " in status, f"{status}\n{srv.logs_tail()}"
        res = json.loads(body)
        if mode == "inline":
            assert res == {"main": size, "other": 0,
                           "errors": [OTHER_THREAD]}, res
        elif how == "both":
            assert res["errors"] == [] and \
                res["main"] + res["other"] == size, res
        else:
            assert res == {"main": 0, "other": size, "errors": []}, res


@BOTH
def test_buffered_input_two_threads(nginx, mode):
    """A buffered body (in memory and in a temp file) may be read from any
    thread: the two readers share it, every byte read once."""
    srv = nginx(main=POOL_MAIN,
                server=loc("/i/", "fault_input_threads.py", mode,
                           "client_body_buffer_size 8k;"))
    for size in (5000, 300000):
        for _ in range(3):
            r = srv.post("/i/?how=both&n=100", b"x" * size)
            assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
            res = r.json()
            assert res["errors"] == [] and \
                res["main"] + res["other"] == size, res


@BOTH
def test_write_from_thread_while_in_application(nginx, mode):
    srv = nginx(main=POOL_MAIN,
                server=loc("/i/", "fault_input_threads.py", mode))
    for _ in range(5):
        r = srv.get("/i/?how=write")
        assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
        assert r.body == b'other\n{"main": 0, "other": 0, "errors": []}'


@BOTH
def test_write_from_thread_while_reading_input(nginx, mode):
    """On a pool, write() from one thread and wsgi.input on the other both
    wait for the event loop: in turns."""
    srv = nginx(main=POOL_MAIN,
                server=loc("/i/", "fault_input_threads.py", mode, STREAMED))
    chunks = [b"y" * 2000 for i in range(30)]
    for _ in range(3):
        status, body = post_slowly(srv, "/i/?how=mixed", chunks)
        assert " 200 " in status, f"{status}\n{srv.logs_tail()}"
        assert body == b"other\n" * 20 + json.dumps(
            {"main": 60000, "other": 0, "errors": []}).encode(), body


@BOTH
@pytest.mark.parametrize("buffering", ["on", "off"])
def test_threads_refused_outside_application(nginx, mode, buffering):
    """A thread the application left running uses write() and wsgi.input
    while the request waits for its client, out of the application."""
    srv = nginx(main=POOL_MAIN,
                server=loc("/i/", "fault_input_threads.py", mode,
                           f"wsgi_request_buffering {buffering};"))
    for n in range(3):
        side = srv.prefix / f"late{n}"
        s = send(srv, f"POST /i/?how=late&token={n}&side={side} HTTP/1.1\r\n"
                 "Host: h\r\nContent-Length: 10\r\nConnection: close\r\n"
                 "\r\nhello".encode(), timeout=30, rcvbuf=4096)
        if buffering == "on":
            s.sendall(b"world")
        # the thread tried while the request waits for its client
        assert wait_for(side.exists, 10), srv.logs_tail()
        if buffering == "off":
            # the rest of the body, still on its way meanwhile
            s.sendall(b"world")
        data = read_all(s, 30)[0]
        s.close()
        assert data.endswith(b"end\r\n0\r\n\r\n"), data[-200:]
        assert b"late" not in data
        got = srv.get_json(f"/i/?how=result&token={n}")
        assert got[0] == ("write RuntimeError: write() called from a thread "
                          "other than the request's"), got
        if buffering == "off":
            assert got[1] == "read " + OTHER_THREAD[6:], got
        else:
            # the body is in memory, read under the GIL: no hazard
            assert got[1] == "read ok", got


# graceful shutdown while the event loop runs an application


@BOTH
@pytest.mark.parametrize("quit_first", [False, True])
def test_quit_serves_backlog(nginx, mode, quit_first):
    """A connection that waits in the accept backlog while an inline
    application runs, when nginx is told to quit (before or after it
    connected), is served, never accepted and then dropped."""
    srv = nginx(main=POOL_MAIN,
                server=loc("/s/", "slow_app.py", mode) +
                loc("/e/", "env_app.py", mode))
    # the slow request waits in the application until the test lets it go
    marker, go = srv.prefix / "slow_started", srv.prefix / "go"
    a = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    a.sendall(f"GET /s/?t=10&go={go}&marker={marker} HTTP/1.1\r\n"
              "Host: h\r\nConnection: close\r\n\r\n".encode())
    assert wait_for(marker.exists), srv.logs_tail()
    if quit_first:
        srv.quit()
        time.sleep(0.2)
    try:
        b = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    except ConnectionRefusedError:
        # the pool's event loop had closed its listening socket: refused
        assert quit_first and mode == "pool"
        b = None
    if b is not None:
        b.sendall(b"GET /e/ HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    if not quit_first:
        time.sleep(0.2)
        srv.quit()
    # the master passes the signal on as soon as it has logged it
    assert srv.wait_log(r"signal 3 \(SIGQUIT\) received"), srv.logs_tail()
    go.write_text("go")
    assert b" 200 " in read_all(a, 10)[0].split(b"\r\n")[0]
    if b is not None:
        try:
            data = read_all(b, 10)[0]
        except OSError as e:
            data = repr(e).encode()
        assert data.startswith(b"HTTP/1.1 200 "), data
    assert srv.wait_exit(10) is not None


@BOTH
@pytest.mark.parametrize("query", ["", "read"])
def test_fork_while_a_thread_waits(nginx, mode, query):
    """A process forked while another thread of the request waits for the
    event loop (for wsgi.input) has no such thread: returning from the
    application, it exits instead of waiting for that thread forever."""
    srv = nginx(main=POOL_MAIN,
                server=loc("/w/", "fault_fork_waiting.py", mode, STREAMED))
    ended = srv.prefix / "ended"
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(f"POST /w/?{query}&ended={ended} HTTP/1.1\r\n"
              "Host: localhost\r\nContent-Length: 5\r\n"
              "Connection: close\r\n\r\n".encode())
    # the body comes once the child forked meanwhile has ended
    assert wait_for(ended.exists, 10), srv.logs_tail()
    s.sendall(b"hello")
    data, _ = read_all(s, 30)
    s.close()
    p = Parsed(data)
    assert p.code == 200, f"{data!r}\n{srv.logs_tail()}"
    size = 5 if mode == "pool" else -1
    assert p.body == b"exit 1 %d" % size, srv.logs_tail()
    assert srv.wait_log(r"forked by the application returned into the "
                        r"server"), srv.logs_tail()


@pytest.mark.allow_log(r"accept4\(\) failed \(24: Too many open files\)")
def test_backlog_out_of_descriptors(nginx):
    """After a slow inline step, what waits in the backlog is accepted until
    nginx runs out of descriptors; then it stops, as nginx does, rather
    than trying again and logging each try."""
    srv = nginx(main=POOL_MAIN + " worker_rlimit_nofile 64;",
                server=loc("/s/", "slow_app.py", "inline"))
    a = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    a.sendall(b"GET /s/?t=0.5 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    time.sleep(0.2)
    waiting = [socket.create_connection(("127.0.0.1", srv.port), timeout=10)
               for _ in range(100)]
    try:
        assert Parsed(read_all(a, 10)[0]).code == 200
        time.sleep(0.3)
        tries = srv.error_log().count("Too many open files")
        assert 1 <= tries <= 5, tries
    finally:
        for s in waiting:
            s.close()
        a.close()
    # nginx enables accept again after accept_mutex_delay (500 ms), and
    # then serves (a stop before that would accept() on a closed socket):
    # this request waits in the backlog until it does
    assert wait_for(lambda: srv.get("/s/?t=0").status == 200, 5)
