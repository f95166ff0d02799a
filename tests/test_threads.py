"""Applications on nginx thread pools (wsgi_thread_pool, wsgi_buffer_size).

Most tests name their mode explicitly per location, so that they check the
same thing in both runs of the suite (thread pool by default and
TEST_NGINX_GLOBALS_HTTP="wsgi_thread_pool off;"):

    main:      thread_pool t threads=4;
    location:  wsgi_thread_pool t;     ("pool")
               wsgi_thread_pool off;   ("inline", on the event loop)

Apps: tests/apps/thr_app.py (one callable per test, behind
wsgiref.validate), tests/apps/thr_raw.py (bytearray/memoryview chunks,
which the validator would refuse), tests/apps/slow_app.py and
tests/apps/env_app.py.
"""

import hashlib
import os
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness import (APPS_DIR, Parsed, inline_mode, module_has_directive,
                     pid_alive, proc_cmdline, read_all, req, send,
                     side_lines, url, wait_for, wait_stable)


POOL_MAIN = "thread_pool t threads=4;"
MODES = {"inline": "wsgi_thread_pool off;", "pool": "wsgi_thread_pool t;"}


def loc(path, app, mode, extra=""):
    """A location running {apps}/APP ("script.py [callable]") in mode."""
    return (f"location {path} {{ wsgi_pass {{apps}}/{app}; {MODES[mode]} "
            f"{extra} }}\n")


def send_get(port, path, host="127.0.0.1", rcvbuf=None, timeout=10.0):
    """A GET with Connection: close sent; the socket, its answer unread."""
    return send(port, req(path), timeout, rcvbuf, host)


def finish(sock, timeout=10.0):
    """Read the rest of the response on sock until EOF, close it."""
    try:
        data = read_all(sock, timeout)[0]
    finally:
        sock.close()
    p = Parsed(data)
    assert p.rest == b"", f"bytes after the response: {p!r}"
    return p


def chunk_bytes(i, size):
    """Same as thr_app.chunk_bytes()."""
    head = b"%08d|" % i
    return head + bytes([65 + i % 26]) * (size - len(head))


def expected_digest(n, size):
    h = hashlib.sha256()
    for i in range(n):
        h.update(chunk_bytes(i, size))
    return h.hexdigest()


def marker_text(path):
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def wait_marker(srv, path):
    """Wait until slow_app.py wrote its pid to path; return the pid."""
    text = wait_for(lambda: marker_text(path))
    assert text, f"slow request did not start\n{srv.logs_tail()}"
    return int(text)


def free_port_on(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((addr, 0))
        return s.getsockname()[1]
    finally:
        s.close()


# -- a slow application does not hold up the worker --------------------------


def slow_server(nginx, tmp_path, slow_mode):
    static = tmp_path / "html" / "static"
    static.mkdir(parents=True)
    (static / "f.txt").write_bytes(b"static file\n")
    return nginx(main=POOL_MAIN, server=(
        "root {prefix}/html;\n"
        "location /static/ { }\n"
        + loc("/slow", "slow_app.py", slow_mode)
        + loc("/fast", "thr_app.py hello", "pool")
        + loc("/meet", "thr_app.py meet", "pool")))


def test_slow_app_does_not_delay_static_nor_other_wsgi(nginx, tmp_path):
    # the slow request waits in the application until the test lets it go
    # (or 10 s): a worker it held up would not answer the others in time
    srv = slow_server(nginx, tmp_path, "pool")
    marker = tmp_path / "slow_started"
    slow = send_get(srv.port, url("/meet", key="slow", n=2, timeout=10,
                                  marker=marker))
    pid = wait_marker(srv, marker)

    r = srv.get("/static/f.txt", timeout=5)
    assert (r.status, r.body) == (200, b"static file\n"), r

    r = srv.get("/fast", timeout=5)
    assert r.status == 200, r
    assert r.body == b"hello %d True\n" % pid, r

    # both were answered while the slow one was still running
    slow.setblocking(False)
    try:
        early = slow.recv(1)
    except BlockingIOError:
        early = None
    slow.setblocking(True)
    assert early is None, "the slow response was already there"

    # another request of the same location lets it go
    r = srv.get(url("/meet", key="slow", n=2), timeout=5)
    assert (r.status, r.body[:6]) == (200, b"met 2 "), r
    rep = finish(slow)
    assert rep.code == 200, rep
    assert rep.body.startswith(b"met 2 "), rep
    assert srv.worker_pids() == [pid]


def test_control_inline_slow_app_delays_the_worker(nginx, tmp_path):
    # the test above can tell: on the event loop, it does block
    srv = slow_server(nginx, tmp_path, "inline")
    marker, go = tmp_path / "slow_started", tmp_path / "go"
    slow = send_get(srv.port, url("/slow", t=10, go=go, marker=marker))
    wait_marker(srv, marker)
    s = send_get(srv.port, "/static/f.txt")
    try:
        early, _ = read_all(s, 0.3)
        assert early == b"", "static file served while the app ran inline"
        go.write_text("go")
    finally:
        r = finish(s)
    assert (r.code, r.body) == (200, b"static file\n"), r
    assert finish(slow).code == 200


# -- thread pool queue bound -------------------------------------------------


def test_queue_overflow_is_503_with_retry_after(nginx, nginx_t, tmp_path):
    # Requests wait in the module's queue in front of the pool; its bound
    # is wsgi_max_queue (the pool's max_queue bounds only runner tasks).
    own_queue = module_has_directive(nginx_t, "wsgi_max_queue 1;")
    srv = nginx(main="thread_pool q threads=1 max_queue=1;",
                server="location /slow { wsgi_pass {apps}/slow_app.py; "
                       "wsgi_thread_pool q; %s }"
                       % ("wsgi_max_queue 1;" if own_queue else ""))
    # the first request holds the one thread until the test creates go
    m1, m2, go = tmp_path / "m1", tmp_path / "m2", tmp_path / "go"
    s1 = send_get(srv.port, url("/slow", t=10, go=go, marker=m1))
    pid = wait_marker(srv, m1)

    # the one thread is busy: this one waits in the queue ...
    s2 = send_get(srv.port, url("/slow", t=0, marker=m2))
    time.sleep(0.3)
    assert not m2.exists()

    # ... and the queue (max_queue=1) is full for this one, at once
    r3 = finish(send_get(srv.port, url("/slow", t=0)), timeout=5)
    assert r3.code == 503, r3
    assert r3.header("Retry-After") == "1", r3
    assert not m2.exists(), "the queued request ran before the first ended"

    go.write_text("go")
    r1 = finish(s1)
    assert r1.code == 200, r1
    assert r1.body == b"done %d 10.0\n" % pid
    r2 = finish(s2)
    assert r2.code == 200, r2
    assert r2.body == b"done %d 0.0\n" % pid

    assert srv.wait_log(r'\[error\] .*(thread pool "q" queue overflow'
                        r'|wsgi_max_queue reached)'), srv.logs_tail()
    # the worker goes on serving (paced: back-to-back requests on this
    # pool are test_back_to_back_requests_on_a_minimal_pool_are_served)
    for _ in range(3):
        time.sleep(0.1)
        r = srv.get(url("/slow", t=0))
        assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    assert srv.worker_pids() == [pid]


def test_back_to_back_requests_on_a_minimal_pool_are_served(nginx, nginx_t):
    # one thread, room for one waiting request: a client that sends its
    # next request as soon as it has the previous answer never finds the
    # pool busy with work of the module's own
    own_queue = module_has_directive(nginx_t, "wsgi_max_queue 1;")
    srv = nginx(main="thread_pool q threads=1 max_queue=1;",
                server="location / { wsgi_pass {apps}/thr_app.py hello; "
                       "wsgi_thread_pool q; %s }"
                       % ("wsgi_max_queue 1;" if own_queue else ""))
    N = 500
    conn = srv.connection(timeout=10)
    try:
        codes = []
        for _ in range(N):
            conn.request("GET", "/")
            r = conn.getresponse()
            r.read()
            codes.append(r.status)
    finally:
        conn.close()
    bad = [(i, c) for i, c in enumerate(codes) if c != 200]
    assert not bad, f"{len(bad)} of {N} answered {bad[:5]}...\n" \
                    f"{srv.logs_tail(10)}"


# -- write() waits for the client --------------------------------------------


def test_write_blocks_instead_of_buffering(nginx, tmp_path):
    n, size = 256, 256 * 1024
    srv = nginx(main=POOL_MAIN,
                server=loc("/w", "thr_app.py write_big", "pool"))
    side = tmp_path / "side.txt"
    s = send_get(srv.port, url("/w", n=n, size=size, side=side),
                 rcvbuf=16384)
    try:
        assert wait_for(lambda: side_lines(side)), srv.logs_tail()
        done = wait_stable(lambda: [ln for ln in side_lines(side)
                                    if ln.startswith("wrote")])
        # socket buffers hold a few MiB at most: 16 chunks of 256 KiB
        assert len(done) < n // 4, \
            f"{len(done)} of {n} write()s returned to a non-reading client"
        assert "returned" not in side_lines(side)

        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(65536)
            assert d, head
            head += d
        p = Parsed(head)
        assert p.code == 200, p
        assert p.all("Content-Length") == [str(n * size)], p
        h = hashlib.sha256(p.body)
        got = len(p.body)
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            h.update(d)
            got += len(d)
    finally:
        s.close()
    assert got == n * size
    assert h.hexdigest() == expected_digest(n, size), "body corrupted"
    assert wait_for(lambda: "returned" in side_lines(side))
    assert len(side_lines(side)) == n + 1


# -- mutable chunks are copied -----------------------------------------------


@pytest.mark.parametrize("kind", ["bytearray", "memoryview",
                                  "write_bytearray", "write_memoryview"])
@pytest.mark.parametrize("mode", ["inline", "pool"])
def test_mutating_a_chunk_after_handing_it_over(nginx, mode, kind):
    srv = nginx(main=POOL_MAIN, server=loc("/", "thr_raw.py mutate", mode))
    # one big chunk per step, then several within one step's batch
    for n, letters in ((100 * 1024, "AB"), (8 * 1024, "ABCDEFGH"),
                       (1, "xyz")):
        r = srv.get(url("/", kind=kind, n=n, letters=letters))
        assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
        want = b"".join(c.encode() * n for c in letters)
        assert len(r.body) == len(want)
        if r.body != want:
            runs = [(m.group(0)[:1], len(m.group(0)))
                    for m in re.finditer(rb"(.)\1*", r.body)]
            pytest.fail(f"{kind} n={n} letters={letters}: got runs {runs}")


# -- wsgi.multithread --------------------------------------------------------


def test_wsgi_multithread_follows_the_mode(nginx):
    srv = nginx(main=POOL_MAIN, server=(
        loc("/pool", "env_app.py", "pool")
        + loc("/inline", "env_app.py", "inline")
        + "location /default { wsgi_pass {apps}/env_app.py; }\n"))
    for path, want in (("/pool", True), ("/inline", False),
                       ("/default", not inline_mode())):
        e = srv.get_json(path)
        assert e["wsgi.multithread"]["type"] == "bool", e
        assert e["wsgi.multithread"]["repr"] == str(want), path


# -- the client goes away ----------------------------------------------------


@pytest.mark.parametrize("mode", ["inline", "pool"])
def test_client_gone_stops_a_streaming_generator(nginx, tmp_path, mode):
    srv = nginx(main=POOL_MAIN, server=(
        loc("/stream", "thr_app.py stream", mode)
        + loc("/hello", "thr_app.py hello", mode)))
    pids = srv.worker_pids()
    side = tmp_path / "side.txt"
    s = send_get(srv.port, url("/stream", n=200, delay=0.05, side=side))
    data = b""
    try:
        deadline = time.monotonic() + 5
        while b"chunk 2\n" not in data and time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                break
            data += d
    finally:
        s.close()
    gone_at = time.monotonic()
    assert b"chunk 2\n" in data, data
    before = len([ln for ln in side_lines(side) if ln.startswith("chunk")])

    assert wait_for(lambda: "close" in side_lines(side), timeout=3), \
        f"close() not called:\n{side_lines(side)[-5:]}\n{srv.logs_tail()}"
    took = time.monotonic() - gone_at
    lines = side_lines(side)
    chunks = [ln for ln in lines if ln.startswith("chunk")]
    assert lines[-1] == "close" and lines.count("close") == 1, lines
    assert len(chunks) < 200
    # the client was there for the first ones
    assert chunks[:3] == ["chunk 0 True", "chunk 1 True", "chunk 2 True"]
    # 50 ms a chunk: at most a second's worth after the client went away
    assert len(chunks) - before <= 20, \
        f"{len(chunks) - before} chunks after the disconnect ({took:.2f}s)"
    # nothing more is produced after close()
    time.sleep(0.3)
    assert side_lines(side) == lines

    r = srv.get("/hello")
    assert r.status == 200, r
    assert srv.worker_pids() == pids


def watch_server(nginx):
    return nginx(main=POOL_MAIN, server=(
        loc("/watch", "thr_app.py watch", "pool")
        + loc("/hello", "thr_app.py hello", "pool")))


def test_client_connected_turns_false_when_client_leaves(nginx, tmp_path):
    srv = watch_server(nginx)
    pids = srv.worker_pids()
    side = tmp_path / "side.txt"
    s = send_get(srv.port, url("/watch", limit=5, side=side))
    try:
        assert wait_for(lambda: side_lines(side)), srv.logs_tail()
        assert side_lines(side)[0] == "start True"
        time.sleep(0.2)
        assert len(side_lines(side)) == 1, side_lines(side)
    finally:
        s.close()
    assert wait_for(lambda: len(side_lines(side)) >= 3, timeout=3), \
        f"app did not see the client go: {side_lines(side)}"
    lines = side_lines(side)
    assert lines[1].startswith("gone "), lines
    assert lines[2] == "returned", lines
    assert srv.get("/hello").status == 200
    assert srv.worker_pids() == pids


@pytest.mark.parametrize("mode", ["inline", "pool"])
@pytest.mark.parametrize("how", ["close", "shutdown"])
def test_client_connected_sees_the_client_leave_in_both_modes(
        nginx, tmp_path, mode, how):
    """Inline, the read event waits for the step to end: the application
    still learns that the client closed, or shut down its sending side
    (taken as gone, as for the read event), while it runs."""
    srv = nginx(main=POOL_MAIN, server=(
        loc("/watch", "thr_app.py watch", mode)
        + loc("/hello", "thr_app.py hello", mode)))
    pids = srv.worker_pids()
    side = tmp_path / "side.txt"
    s = send_get(srv.port, url("/watch", limit=5, side=side))
    try:
        assert wait_for(lambda: side_lines(side)), srv.logs_tail()
        assert side_lines(side)[0] == "start True"
        if how == "shutdown":
            s.shutdown(socket.SHUT_WR)
        else:
            s.close()
        assert wait_for(lambda: len(side_lines(side)) >= 3, timeout=3), \
            f"app did not see the client go: {side_lines(side)}"
    finally:
        s.close()
    lines = side_lines(side)
    assert lines[1].startswith("gone "), lines
    assert srv.get("/hello").status == 200
    assert srv.worker_pids() == pids


def test_client_connected_stays_true_while_client_waits(nginx, tmp_path):
    srv = watch_server(nginx)
    side = tmp_path / "side.txt"
    rep = finish(send_get(srv.port, url("/watch", limit=0.5, side=side)))
    assert rep.code == 200, rep
    assert rep.body == b"watched\n"
    assert side_lines(side) == ["start True", "timeout", "returned"]


def meet_two(srv, timeout):
    """Two concurrent requests that wait for each other up to timeout:
    "met"/"alone" and the most of them in the application at once."""
    reps = concurrent_gets(srv, [url("/meet", n=2, timeout=timeout)] * 2)
    assert [r.code for r in reps] == [200, 200], \
        f"{reps!r}\n{srv.logs_tail()}"
    return [r.body.split()[:2] for r in reps]


@pytest.mark.skipif(inline_mode(), reason="the default pool is not used "
                    "under http-level wsgi_thread_pool off")
def test_declared_wsgi_pool_is_the_default(nginx):
    meet = "location /meet { wsgi_pass {apps}/thr_app.py meet; }"
    # the module's own pool runs two requests at once ...
    srv = nginx(server=meet)
    assert meet_two(srv, 5) == [[b"met", b"2"]] * 2
    # ... a declared "thread_pool wsgi threads=1" replaces it
    srv = nginx(main="thread_pool wsgi threads=1;", server=meet)
    assert meet_two(srv, 0.5) == [[b"alone", b"1"]] * 2


def worker_threads(srv):
    return len(os.listdir(f"/proc/{srv.worker_pids()[0]}/task"))


def test_default_pool_starts_only_when_an_application_uses_it(nginx):
    inline = "location / { wsgi_pass {apps}/hello.py; }"
    srv = nginx(server="wsgi_thread_pool off; " + inline)
    assert srv.get("/").status == 200
    assert worker_threads(srv) == 1, "threads for a pool nobody uses"
    # one location on the default pool: the module's 32 threads
    srv = nginx(server="wsgi_thread_pool off; " + inline +
                " location /p { wsgi_pass {apps}/hello.py;"
                " wsgi_thread_pool wsgi; }")
    assert srv.get("/p").status == 200
    assert worker_threads(srv) == 1 + 32


# -- wsgi_var HTTPS ----------------------------------------------------------


def test_wsgi_var_https_sets_url_scheme(nginx):
    srv = nginx(server=(
        "location /plain { wsgi_pass {apps}/env_app.py; }\n"
        "location /on { wsgi_pass {apps}/env_app.py; wsgi_var HTTPS on; }\n"
        "location /one { wsgi_pass {apps}/env_app.py; wsgi_var HTTPS 1; }\n"
        "location /off { wsgi_pass {apps}/env_app.py; wsgi_var HTTPS off; }\n"
        "location /arg { wsgi_pass {apps}/env_app.py; "
        "wsgi_var HTTPS $arg_https; }\n"))
    e = srv.get_json("/plain")
    assert e["wsgi.url_scheme"] == "http"
    assert "HTTPS" not in e
    e = srv.get_json("/on")
    assert e["wsgi.url_scheme"] == "https"
    assert e["HTTPS"] == "on"
    e = srv.get_json("/one")
    assert e["wsgi.url_scheme"] == "https"
    e = srv.get_json("/off")
    assert e["wsgi.url_scheme"] == "http"
    assert e["HTTPS"] == "off"
    assert srv.get_json("/arg?https=on")["wsgi.url_scheme"] == "https"
    assert srv.get_json("/arg")["wsgi.url_scheme"] == "http"


# -- wsgi_buffer_size --------------------------------------------------------


def produced(srv, key):
    return srv.get_json(url("/progress", key=key))["produced"]


def read_stream(s, n, size):
    """Read a produce response to its end: it is intact."""
    try:
        data = read_all(s, 20)[0]
    finally:
        s.close()
    p = Parsed(data)
    assert p.code == 200 and p.rest == b"", p
    assert len(p.body) == n * size
    assert hashlib.sha256(p.body).hexdigest() == expected_digest(n, size)


@pytest.mark.serial
@pytest.mark.parametrize("mode", ["inline", "pool"])
def test_wsgi_buffer_size_bounds_what_is_produced_ahead(nginx, mode):
    # a listener with a small fixed send buffer, so that socket buffers
    # do not dwarf wsgi_buffer_size (127.0.0.2: the harness has 127.0.0.1)
    port = free_port_on("127.0.0.2")
    srv = nginx(main=POOL_MAIN, server=(
        f"listen 127.0.0.2:{port} sndbuf=16k;\n"
        + loc("/p8k", "thr_app.py produce", mode, "wsgi_buffer_size 8k;")
        + loc("/p1m", "thr_app.py produce", mode, "wsgi_buffer_size 1m;")
        + loc("/progress", "thr_app.py progress", mode)))
    n, size = 4096, 4096                  # 16 MiB of 4 KiB chunks
    kib = size // 1024
    # two streams the client does not read yet, side by side
    socks = [send_get(port, url(path, key=key, n=n, size=size),
                      host="127.0.0.2", rcvbuf=4096)
             for path, key in (("/p8k", "small"), ("/p1m", "big"))]
    try:
        # 1m lets its producer get well ahead of 8k's ...
        assert wait_for(lambda: produced(srv, "big") * size >= max(
            4 * produced(srv, "small") * size,
            produced(srv, "small") * size + 512 * 1024), timeout=10), \
            (produced(srv, "small"), produced(srv, "big"))
        # ... and, once both stood still for a while (any amount of
        # waiting for a producer that runs on is only a chance to catch
        # it), neither got further than its bound
        wait_stable(lambda: (produced(srv, "small"), produced(srv, "big")),
                    quiet=0.5)
        small, big = produced(srv, "small"), produced(srv, "big")
        # socket buffers (well under 512 KiB here) + wsgi_buffer_size
        assert small * size <= 512 * 1024, f"8k: {small * kib} KiB ahead"
        assert big * size <= 2 * 1024 * 1024, f"1m: {big * kib} KiB ahead"
        assert big >= 4 * small, (small, big)
        assert big * size >= small * size + 512 * 1024, \
            f"8k: {small * kib} KiB, 1m: {big * kib} KiB ahead"
        # then everything arrives, intact
        for s in socks:
            read_stream(s, n, size)
    finally:
        for s in socks:
            s.close()


# -- graceful quit -----------------------------------------------------------


def test_quit_waits_for_a_running_thread_step(nginx, tmp_path):
    srv = nginx(main=POOL_MAIN, server=loc("/slow", "slow_app.py", "pool"))
    marker, go = tmp_path / "slow_started", tmp_path / "go"
    s = send_get(srv.port, url("/slow", t=10, go=go, marker=marker))
    pid = wait_marker(srv, marker)
    srv.quit()
    # the worker has the signal, and still waits for the step
    assert wait_for(lambda: b"shutting down" in proc_cmdline(pid)), \
        srv.logs_tail()
    time.sleep(0.3)
    assert pid_alive(pid), "worker exited under a running step"
    go.write_text("go")
    rep = finish(s)
    assert rep.code == 200, f"{rep!r}\n{srv.logs_tail()}"
    assert rep.body == b"done %d 10.0\n" % pid
    assert srv.wait_exit(10) == 0, srv.logs_tail()
    assert wait_for(lambda: not pid_alive(pid), timeout=3)


# -- print() -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["inline", "pool"])
def test_print_goes_to_error_log_at_error_level(nginx, mode):
    srv = nginx(main=POOL_MAIN, server=loc("/", "thr_app.py printer", mode),
                error_level="info")
    token = f"tok{mode}{time.monotonic_ns()}"
    r = srv.get(url("/", token=token))
    assert (r.status, r.body) == (200, b"printed\n"), r
    for stream in ("out", "err"):
        # during a request, with its context
        rx = r"^\S+ \S+ \[(\w+)\] .*wsgi: thr-print-%s %s(, client: |$)" % (
            stream, token)
        m = srv.wait_log(rx, timeout=3)
        assert m, f"no print() to std{stream} in the log\n{srv.logs_tail()}"
        assert m.group(1) == "error", m.group(0)


# -- wsgi_thread_priority, and how many threads a busy pool gets -------------


@pytest.mark.parametrize("priority", [None, "normal", "idle", "auto"])
def test_wsgi_thread_priority_sets_the_pool_threads_policy(nginx, priority):
    http = f"wsgi_thread_priority {priority};" if priority else ""
    srv = nginx(main=POOL_MAIN, http=http, server=(
        loc("/pool", "thr_app.py policy", "pool")
        + loc("/inline", "thr_app.py policy", "inline")))
    want = os.SCHED_IDLE if priority == "idle" else os.SCHED_OTHER
    for _ in range(3):
        r = srv.get("/pool")
        assert (r.status, r.body) == (200, b"policy %d" % want), r
    # the event loop keeps its own: inline apps run on it
    r = srv.get("/inline")
    assert (r.status, r.body) == (200, b"policy %d" % os.SCHED_OTHER), r
    assert os.sched_getscheduler(srv.worker_pids()[0]) == os.SCHED_OTHER


def thread_policies(pid):
    """The scheduling policy of each thread of process pid."""
    policies = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            policies[int(tid)] = os.sched_getscheduler(int(tid))
        except ProcessLookupError:
            pass
    return policies


def all_threads_normal(srv):
    return all(p == os.SCHED_OTHER
               for p in thread_policies(srv.worker_pids()[0]).values())


@pytest.fixture(params=["alone", "contended"])
def cpu_contention(request):
    """Alone, or with a process computing on each CPU for the test's
    length ("contended"), so that the worker's threads get part of the CPU
    time they want (as on a shared machine, or a virtual CPU the hypervisor
    takes away)."""
    if request.param == "alone":
        yield request.param
        return
    hogs = [subprocess.Popen(
        ["/usr/bin/python3", "-c",
         "import time\nend = time.monotonic() + 30\n"
         "while time.monotonic() < end: pass"])
        for _ in range(os.cpu_count() or 1)]
    try:
        yield request.param
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


AUTO_SERVER = (loc("/compute", "thr_app.py compute", "pool")
               + loc("/policy", "thr_app.py policy", "pool"))


def compute_policies(r):
    """The policies of a thr_app.py compute response: before, after, and
    the set it had while it computed."""
    m = re.fullmatch(rb"policy (\d+) (\d+) seen ([\d ]+)", r.body)
    assert r.status == 200 and m, r
    return (int(m.group(1)), int(m.group(2)),
            {int(v) for v in m.group(3).split()})


@pytest.mark.serial
@pytest.mark.parametrize("priority", [None, "auto"])
def test_wsgi_thread_priority_auto_lowers_a_computing_thread(
        nginx, priority, cpu_contention):
    # "auto", the default: a thread whose step computes long gives way to
    # the event loop (SCHED_IDLE) while it does.  When other processes
    # compute on every CPU, SCHED_IDLE would leave it nearly nothing (150
    # ms of Python would take 50 s): it gets its policy back whenever it
    # gets less than half the CPU time the event loop leaves it (and may
    # not give way at all, on a machine busier than this test makes it) ...
    http = f"wsgi_thread_priority {priority};" if priority else ""
    srv = nginx(main=POOL_MAIN, http=http, server=AUTO_SERVER)
    t0 = time.monotonic()
    before, _, seen = compute_policies(srv.get(url("/compute", ms=150)))
    took = time.monotonic() - t0
    assert before == os.SCHED_OTHER
    if cpu_contention == "alone":
        assert seen == {os.SCHED_OTHER, os.SCHED_IDLE}, seen
    else:
        assert seen <= {os.SCHED_OTHER, os.SCHED_IDLE}, seen
    assert took < 3, f"150 ms of Python took {took:.2f} s"
    # ... and has its own policy back once it is done
    assert wait_for(lambda: all_threads_normal(srv), timeout=3), \
        thread_policies(srv.worker_pids()[0])
    r = srv.get("/policy")
    assert (r.status, r.body) == (200, b"policy %d" % os.SCHED_OTHER), r


@pytest.mark.parametrize("priority", ["normal", "idle"])
def test_wsgi_thread_priority_fixed_policies_do_not_move(nginx, priority):
    srv = nginx(main=POOL_MAIN, http=f"wsgi_thread_priority {priority};",
                server=AUTO_SERVER)
    want = os.SCHED_IDLE if priority == "idle" else os.SCHED_OTHER
    r = srv.get(url("/compute", ms=150))
    assert compute_policies(r) == (want, want, {want}), r


@pytest.mark.serial
def test_wsgi_thread_priority_auto_keeps_a_waiting_thread(nginx):
    # a long step that waits (a database) leaves the CPU to the event loop
    # anyway: its thread keeps its policy
    srv = nginx(main=POOL_MAIN, server=AUTO_SERVER)
    r = srv.get(url("/compute", ms=0, nap=150))
    assert compute_policies(r) == (
        os.SCHED_OTHER, os.SCHED_OTHER, {os.SCHED_OTHER}), r


def nice_limit_grantable():
    """Whether unprivileged workers may take a thread back from SCHED_IDLE:
    RLIMIT_NICE allows nice 0 already, or nginx's master may raise it (a
    root without CAP_SYS_RESOURCE, in some containers, may not)."""
    hard = resource.getrlimit(resource.RLIMIT_NICE)[1]
    if hard == resource.RLIM_INFINITY or hard >= 20:
        return True
    caps = re.search(r"^CapEff:\s*([0-9a-f]+)$",
                     Path("/proc/self/status").read_text(), re.M)
    cap_sys_resource = 1 << 24
    return bool(caps and int(caps.group(1), 16) & cap_sys_resource)


@pytest.fixture
def public_apps():
    """A copy of tests/apps that any user can read."""
    d = Path(tempfile.mkdtemp(prefix="wsgi-apps-"))
    try:
        d.chmod(0o755)
        shutil.copy(APPS_DIR / "thr_app.py", d / "thr_app.py")
        (d / "thr_app.py").chmod(0o644)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.serial
@pytest.mark.skipif(os.geteuid() != 0, reason="starts workers as nobody")
def test_wsgi_thread_priority_auto_unprivileged_workers(nginx, public_apps):
    # workers that are not root may take a thread back from SCHED_IDLE
    # only as far as RLIMIT_NICE lets them: the master raises it to their
    # nice value; where it cannot, "auto" says so and works as "normal"
    srv = nginx(main=POOL_MAIN + "\nuser nobody nogroup;",
                server=(f"location /compute {{ wsgi_pass {public_apps}/"
                        f"thr_app.py compute; wsgi_thread_pool t; }}"))
    worker = srv.worker_pids()[0]
    assert os.stat(f"/proc/{worker}").st_uid != 0
    r = srv.get(url("/compute", ms=150))
    if nice_limit_grantable():
        limits = Path(f"/proc/{worker}/limits").read_text()
        m = re.search(r"^Max nice priority\s+(\w+)", limits, re.M)
        assert m and (m.group(1) == "unlimited" or int(m.group(1)) >= 20), \
            limits
        before, _, seen = compute_policies(r)
        assert before == os.SCHED_OTHER
        assert seen == {os.SCHED_OTHER, os.SCHED_IDLE}, seen
        assert wait_for(lambda: all_threads_normal(srv), timeout=3)
    else:
        assert srv.wait_log(r"\[notice\] .*wsgi: pool threads cannot go to "
                            r"SCHED_IDLE and back, \"wsgi_thread_priority "
                            r"auto\" works as \"normal\""), srv.logs_tail()
        assert compute_policies(r) == (
            os.SCHED_OTHER, os.SCHED_OTHER, {os.SCHED_OTHER}), r


def concurrent_gets(srv, paths, timeout=20):
    """Sends all requests at once; their responses, in order."""
    socks = [send_get(srv.port, p, timeout=timeout) for p in paths]
    return [finish(s) for s in socks]


@pytest.mark.serial
def test_computing_runners_get_no_company(nginx, cpu_contention):
    # Python runs one thread at a time: while the pool's thread computes,
    # the requests queued behind it wait for it rather than for new threads
    # that would only wait for the GIL; also when other processes take part
    # of its CPU time
    srv = nginx(main="thread_pool t threads=8;", server=(
        loc("/busy", "thr_app.py busy", "pool")))
    reps = concurrent_gets(srv, [url("/busy", ms=40)] * 6)
    assert [r.code for r in reps] == [200] * 6, reps
    threads = {r.body for r in reps}
    assert len(threads) == 1, threads


@pytest.mark.serial
def test_blocked_runners_get_company(nginx, cpu_contention):
    # ... while requests that wait on something else get threads of their
    # own, and wait side by side
    srv = nginx(main="thread_pool t threads=8;", server=(
        loc("/meet", "thr_app.py meet", "pool")))
    reps = concurrent_gets(srv, [url("/meet", n=6)] * 6)
    assert [r.code for r in reps] == [200] * 6, reps
    assert all(r.body.startswith(b"met 6 ") for r in reps), reps
    assert len({r.body for r in reps}) == 6, reps


def test_idle_runners_join_blocked_ones(nginx):
    # Steps that reach the pool in one round while its busy runners are
    # blocked: the lingering runners take one each, rather than one of them
    # taking one step and the others waiting for a busy runner to be free;
    # here the six steps wait for each other (up to 5 s), and the busy
    # runner for the end of the test
    srv = nginx(main="thread_pool t threads=12;", server=(
        loc("/meet", "thr_app.py meet", "pool")))
    hold = send_get(srv.port, url("/meet", key="hold", n=2, timeout=20))
    burst = [socket.create_connection(("127.0.0.1", srv.port), timeout=20)
             for _ in range(6)]
    try:
        # six more runners, lingering once these are done
        reps = concurrent_gets(srv, [url("/meet", key="warm", n=6)] * 6)
        assert [r.body[:6] for r in reps] == [b"met 6 "] * 6, reps
        for s in burst:
            s.sendall(f"GET {url('/meet', key='burst', n=6)} HTTP/1.1\r\n"
                      "Host: localhost\r\nConnection: close\r\n\r\n"
                      .encode())
        reps = [finish(s) for s in burst]
    finally:
        for s in burst:
            s.close()
    assert [r.code for r in reps] == [200] * 6, reps
    assert [r.body[:6] for r in reps] == [b"met 6 "] * 6, reps
    assert len({r.body for r in reps}) == 6, reps
    r = srv.get(url("/meet", key="hold", n=2))
    assert (r.status, r.body[:6]) == (200, b"met 2 "), r
    assert finish(hold).body.startswith(b"met 2 ")
