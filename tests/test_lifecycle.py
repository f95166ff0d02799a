"""Interpreter lifecycle (SPEC.md "Lifecycle")."""

import http.client
import time

from harness import (Parsed, inline_mode, install_app, pid_alive,
                     proc_cmdline, read_all, wait_for)


def read_pids(path):
    try:
        return [int(x) for x in path.read_text().split()]
    except FileNotFoundError:
        return []


def test_python_runs_in_worker_not_master(nginx):
    srv = nginx(server="location / { wsgi_pass {apps}/pyinfo_app.py; }")
    info = srv.get_json("/")
    assert info["pid"] != srv.pid
    assert info["pid"] in srv.worker_pids()
    assert info["ppid"] == srv.pid


def test_same_worker_keeps_interpreter(nginx):
    srv = nginx(server="location / { wsgi_pass {apps}/pyinfo_app.py; }")
    pids = {srv.get_json("/")["pid"] for _ in range(5)}
    assert len(pids) == 1
    assert pids <= set(srv.worker_pids())


def test_app_imported_at_worker_start(nginx, tmp_path):
    marker = tmp_path / "imports.txt"
    app = install_app("import_marker_app.py", tmp_path, MARKER=marker)
    srv = nginx(server=f"location / {{ wsgi_pass {app}; }}", workers=2,
                prefix=tmp_path / "p")
    # no request has been sent: the import happens at worker start
    pids = wait_for(lambda: len(read_pids(marker)) >= 2 and read_pids(marker))
    assert pids, f"app not imported before any request ({read_pids(marker)})"
    workers = srv.worker_pids()
    assert sorted(pids) == sorted(workers)
    assert srv.pid not in pids
    # requests do not import again
    for _ in range(4):
        j = srv.get_json("/")
        assert j["pid"] in workers
    assert sorted(read_pids(marker)) == sorted(workers)


def test_background_thread_runs_between_requests(nginx):
    srv = nginx(server="location / { wsgi_pass {apps}/thread_app.py; }")
    a = srv.get_json("/")
    time.sleep(0.5)          # no request in flight: ~50 ticks of 10 ms
    b = srv.get_json("/")
    assert a["pid"] == b["pid"]
    assert a["alive"] and b["alive"]
    assert b["counter"] - a["counter"] >= 15, (a, b)
    time.sleep(0.3)
    c = srv.get_json("/")
    assert c["counter"] - b["counter"] >= 8, (b, c)


def start_slow(srv, marker, t=1.5, go=None):
    """A request to slow_app.py, in it: (socket, worker pid).  With go, it
    waits until the test creates that file (at most t seconds)."""
    q = f"t={t}&marker={marker}" + (f"&go={go}" if go else "")
    s = srv.raw_socket(timeout=15)
    s.sendall(f"GET /slow?{q} HTTP/1.1\r\nHost: h\r\n"
              "Connection: close\r\n\r\n".encode())
    assert wait_for(lambda: marker.exists() and marker.read_text(),
                    timeout=5), f"slow request not started\n{srv.logs_tail()}"
    return s, int(marker.read_text())


SLOW_SERVER = """
    location /slow { wsgi_pass {apps}/slow_app.py; }
    location / { wsgi_pass {apps}/pyinfo_app.py; }
"""


def test_reload_with_slow_request_in_flight(nginx, tmp_path):
    marker = tmp_path / "slow_started"
    imports = tmp_path / "imports.txt"
    app = install_app("import_marker_app.py", tmp_path, MARKER=imports)
    srv = nginx(server=SLOW_SERVER + f"location /imp {{ wsgi_pass {app}; }}",
                prefix=tmp_path / "p")
    assert wait_for(lambda: len(read_pids(imports)) == 1)
    go = tmp_path / "go"
    sock, old_pid = start_slow(srv, marker, t=10, go=go)
    assert old_pid in srv.worker_pids()

    new = srv.reload(wait_old=False)
    assert old_pid not in new
    # new workers serve while the old one still finishes its request; an
    # old worker whose event loop is free may take a connection or two
    # before it has handled its SIGQUIT and closed its listening socket
    deadline = time.monotonic() + 3
    info = srv.get_json("/")
    while info["pid"] not in new and time.monotonic() < deadline:
        time.sleep(0.05)
        info = srv.get_json("/")
    assert info["pid"] in new
    assert pid_alive(old_pid)

    go.write_text("go")
    data = read_all(sock, 10)[0]
    sock.close()
    p = Parsed(data)
    assert p.code == 200 and p.rest == b"", p
    assert p.body == b"done %d 10.0\n" % old_pid

    assert wait_for(lambda: not pid_alive(old_pid), timeout=5), \
        "old worker did not exit after its request"
    # the new worker imported the apps at its start, the master never did
    assert wait_for(lambda: len(read_pids(imports)) == 2)
    assert read_pids(imports)[1] in new
    assert srv.pid not in read_pids(imports)
    assert srv.get_json("/")["pid"] in new


def test_quit_with_slow_request_in_flight(nginx, tmp_path):
    marker = tmp_path / "slow_started"
    go = tmp_path / "go"
    srv = nginx(server=SLOW_SERVER, prefix=tmp_path / "p")
    sock, pid = start_slow(srv, marker, t=10, go=go)
    srv.quit()
    # the master passes the signal on as soon as it has logged it; on the
    # pool, the worker shows it has it (inline, its event loop is in the
    # application and learns it only after)
    assert srv.wait_log(r"signal 3 \(SIGQUIT\) received"), srv.logs_tail()
    if not inline_mode():
        assert wait_for(lambda: b"shutting down" in proc_cmdline(pid)), \
            srv.logs_tail()
    assert pid_alive(pid)
    go.write_text("go")
    data = read_all(sock, 10)[0]
    sock.close()
    p = Parsed(data)
    assert p.code == 200 and p.rest == b"", p
    assert p.body == b"done %d 10.0\n" % pid
    assert srv.wait_exit(10) == 0, srv.logs_tail()
    assert not pid_alive(pid)


def test_reload_twice_keeps_serving(nginx):
    srv = nginx(server="location / { wsgi_pass {apps}/pyinfo_app.py; }",
                workers=2)
    seen = set()
    for _ in range(2):
        new = srv.reload()
        for _ in range(3):
            pid = srv.get_json("/")["pid"]
            assert pid in new
            seen.add(pid)
    assert srv.pid not in seen


def test_background_thread_runs_under_load(nginx):
    """Requests back to back, with no pause for the worker: the GIL still
    reaches the application's own thread (inline, the event loop keeps the
    GIL for a round of events, never longer than CPython's switch
    interval while Python runs)."""
    srv = nginx(server="location / { wsgi_pass {apps}/thread_app.py; }")
    first = srv.get_json("/")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    deadline = time.monotonic() + 1.0
    n = 0
    try:
        while time.monotonic() < deadline and n < 100000:
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            n += 1
    finally:
        conn.close()
    last = srv.get_json("/")
    assert last["pid"] == first["pid"]
    # 1 s of 10 ms ticks is 100; a starved thread would be far below
    assert last["counter"] - first["counter"] >= 40, (first, last, n)


def test_quit_serves_connections_waiting_in_the_backlog(nginx, tmp_path):
    """Inline, a slow step holds the event loop while clients connect: the
    kernel queues them in the listening socket's backlog.  A graceful stop
    that arrives meanwhile still answers every one of them, instead of
    closing the listening socket on them."""
    marker = tmp_path / "slow_started"
    srv = nginx(server="""
        location /slow { wsgi_pass {apps}/slow_app.py;
                         wsgi_thread_pool off; }
        location / { wsgi_pass {apps}/pyinfo_app.py; wsgi_thread_pool off; }
    """, prefix=tmp_path / "p")
    go = tmp_path / "go"
    sock, pid = start_slow(srv, marker, t=10, go=go)
    waiting = []
    try:
        for _ in range(6):
            s = srv.raw_socket(timeout=15)
            s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n"
                      b"Connection: close\r\n\r\n")
            waiting.append(s)
        srv.quit()
        # the master passes the signal on as soon as it has logged it
        assert srv.wait_log(r"signal 3 \(SIGQUIT\) received"), \
            srv.logs_tail()
        go.write_text("go")
        data = read_all(sock, 10)[0]
        assert Parsed(data).code == 200, data
        for s in waiting:
            data = read_all(s, 10)[0]
            assert data.startswith(b"HTTP/1.1 200"), data
    finally:
        sock.close()
        for s in waiting:
            s.close()
    assert srv.wait_exit(10) == 0, srv.logs_tail()
