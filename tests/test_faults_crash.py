"""Crash containment: an application that kills its worker while its
script is imported, or while it serves a request, costs that worker only
(docs/crashes.md)."""

import http.client
import os
import re
import signal
import socket
import time

import pytest

from harness import install_app, subinterpreter_mode, wait_for

# CPython cannot fork beside sub-interpreters: the child hangs in
# PyOS_AfterFork_Child() (docs/guide.md, "Forking beside sub-interpreters")
pytestmark = pytest.mark.skipif(subinterpreter_mode(),
                                reason="no fork beside sub-interpreters")


# the master's own lines about the workers the applications killed
EXITED_RE = re.compile(r"worker process \d+ exited")

ALLOW = (r"exited on signal", r"\[alert\] .*wsgi: worker process \d+ died")

IMPORT_HOW = {
    "segv": r"on signal 11",
    "kill": r"on signal 11",
    "exit1": r"in os\._exit\(1\)",
    "exit2": r"in os\._exit\(2\), exit code 1",
}


def server(nginx, tmp_path, how, workers=2, group=""):
    flag = tmp_path / "crash.flag"
    flag.write_text("")
    app = install_app("crash_import.py", tmp_path, HOW=how, FLAG=flag)
    group = f"wsgi_application_group {group};" if group else ""
    srv = nginx(server=f"""
        location = /static {{ return 200 "static\\n"; }}
        location /app {{ {group} wsgi_pass {app}; }}
        location = /hello {{ wsgi_pass {{apps}}/hello.py; }}
    """, workers=workers, prefix=tmp_path / "p")
    return srv, app, flag


def get(srv, path, timeout=1.0):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def app_status(srv):
    """The status of /app, None if the request was cut."""
    try:
        return get(srv, "/app", timeout=5)[0]
    except (http.client.HTTPException, ConnectionError):
        return None


def exited(srv):
    return len([x for x in srv.error_log().splitlines()
                if EXITED_RE.search(x)])


@pytest.mark.allow_log(*ALLOW)
@pytest.mark.parametrize("how", sorted(IMPORT_HOW))
def test_crash_at_import_is_contained(nginx, tmp_path, how):
    srv, app, _flag = server(nginx, tmp_path, how)

    died = (r"\[error\] .*wsgi: worker process \d+ died %s while "
            r"importing script \"%s\"" % (IMPORT_HOW[how],
                                          re.escape(str(app))))
    assert srv.wait_log(died), srv.logs_tail()

    # nginx's own location and the other application answer all along,
    # this one gets 503, before and after an import tried again (after
    # 1 s, by a request) died in a probe process
    probe_died = r"probe process \d+ died %s while importing script" \
        % IMPORT_HOW[how]
    deadline = time.monotonic() + 10
    after = 0
    for i in range(1000):
        assert get(srv, "/static", timeout=5) == (200, b"static\n")
        died = re.search(probe_died, srv.error_log())
        if i % 5 == 0 or died:
            assert get(srv, "/hello", timeout=5)[0] == 200
            assert get(srv, "/app", timeout=5)[0] == 503
        after += bool(died)
        if after == 3:
            break
        assert time.monotonic() < deadline, \
            "no probe died within 10 s\n" + srv.logs_tail()
        time.sleep(0.05)

    assert srv.worker_pids(), "nginx has no worker left"

    # each worker died once, at start
    assert exited(srv) <= 2, srv.logs_tail()
    # the probe's result is read by a request
    assert wait_for(lambda: app_status(srv) == 503 and re.search(
        r"probe process \d+ died %s while importing script"
        % IMPORT_HOW[how], srv.error_log()),
        timeout=5, interval=0.1), srv.logs_tail()
    assert "cannot be respawned" not in srv.error_log()
    assert re.search(r"\[error\] .*wsgi: script \"%s\" is not loaded: "
                     r"process \d+ died %s while importing it"
                     % (re.escape(str(app)), IMPORT_HOW[how]),
                     srv.error_log()), srv.logs_tail()


@pytest.mark.allow_log(*ALLOW)
def test_crash_at_import_not_noted(nginx, tmp_path):
    # SIGKILL leaves the worker no time to note it; the probe learns it
    srv, app, _flag = server(nginx, tmp_path, "sigkill", workers=1)
    assert srv.wait_log(r"\[error\] .*wsgi: worker process \d+ died while "
                        r"importing script \"%s\"" % re.escape(str(app))), \
        srv.logs_tail()
    assert app_status(srv) == 503
    # the first request after the 1 s delay forks the probe
    assert wait_for(lambda: app_status(srv) == 503 and re.search(
        r"probe process \d+ died on signal 9 while importing",
        srv.error_log()), timeout=5, interval=0.1), srv.logs_tail()
    assert srv.worker_pids()


@pytest.mark.allow_log(*ALLOW)
def test_import_retried_after_delay(nginx, tmp_path):
    srv, app, flag = server(nginx, tmp_path, "segv", workers=1)
    assert srv.wait_log(r"died on signal 11 while importing"), \
        srv.logs_tail()
    r = srv.get("/app")
    assert r.status == 503
    assert r.header("Retry-After") == "1"

    # still crashing: tried again after 1 s, in a probe process, which
    # dies instead of the worker; then after 2 s
    workers = srv.worker_pids()
    assert wait_for(lambda: app_status(srv) == 503 and re.search(
        r"importing script .* again in probe process", srv.error_log()),
        timeout=5, interval=0.1), srv.logs_tail()
    assert wait_for(lambda: app_status(srv) == 503 and re.search(
        r"\[error\] .*probe process \d+ died on signal 11 while importing "
        r"script .*the next one in 2000ms", srv.error_log()),
        timeout=5, interval=0.1), srv.logs_tail()
    for _ in range(10):
        assert app_status(srv) == 503
        assert get(srv, "/static")[0] == 200
    assert srv.worker_pids() == workers
    assert exited(srv) == 1

    # fixed: the first request after the delay imports it
    flag.unlink()
    assert wait_for(lambda: app_status(srv) == 200,
                    timeout=6, interval=0.2), srv.logs_tail()
    assert get(srv, "/app") == (200, b"imported")
    assert re.search(r"the import of script \".*\" returned in a probe "
                     r"process", srv.error_log())
    # the probes are reaped by the worker that forked them
    assert get(srv, "/app") == (200, b"imported")
    assert zombies(workers) == [], srv.logs_tail()


def zombies(parents):
    """Ended children of the processes parents that nobody waited for."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) in parents:
            found.append(int(d))
    return found


@pytest.mark.allow_log(*ALLOW)
def test_probe_lost_with_its_worker(nginx, tmp_path):
    srv, app, flag = server(nginx, tmp_path, "segv", workers=1)
    assert srv.wait_log(r"died on signal 11 while importing"), \
        srv.logs_tail()

    # a probe whose import waits, then its worker is killed
    (tmp_path / "crash.flag.wait").write_text("")
    assert wait_for(lambda: app_status(srv) == 503 and re.search(
        r"again in probe process", srv.error_log()),
        timeout=5, interval=0.1), srv.logs_tail()
    worker, = srv.worker_pids()
    os.kill(worker, signal.SIGKILL)
    assert wait_for(lambda: srv.worker_pids() not in ([], [worker])), \
        srv.logs_tail()

    # the next worker forks another probe at once, not minutes later
    (tmp_path / "crash.flag.wait").unlink()
    assert app_status(srv) == 503
    assert wait_for(lambda: app_status(srv) == 503 and len(re.findall(
        r"again in probe process", srv.error_log())) == 2,
        timeout=3, interval=0.1), srv.logs_tail()
    # its result is read by the next request
    assert wait_for(lambda: app_status(srv) == 503 and re.search(
        r"probe process \d+ died on signal 11", srv.error_log()),
        timeout=3, interval=0.1), srv.logs_tail()


@pytest.mark.allow_log(*ALLOW)
def test_import_that_raises_ends_containment(nginx, tmp_path):
    srv, app, flag = server(nginx, tmp_path, "kill", workers=1)
    assert srv.wait_log(r"died on signal 11 while importing"), \
        srv.logs_tail()
    assert app_status(srv) == 503

    # the retry raises: logged, 500, and tried again by the next request
    (tmp_path / "crash.flag.raise").write_text("")
    assert wait_for(lambda: app_status(srv) == 500, timeout=4,
                    interval=0.2), srv.logs_tail()
    assert srv.wait_log(r"failed to load script"), srv.logs_tail()
    assert app_status(srv) == 500

    (tmp_path / "crash.flag.raise").unlink()
    flag.unlink()
    assert get(srv, "/app") == (200, b"imported")


@pytest.mark.allow_log(*ALLOW)
def test_reload_imports_again(nginx, tmp_path):
    srv, app, flag = server(nginx, tmp_path, "exit2", workers=1)
    assert srv.wait_log(r"died in os\._exit\(2\)"), srv.logs_tail()
    assert get(srv, "/app")[0] == 503

    flag.unlink()
    srv.reload()
    assert get(srv, "/app", timeout=5) == (200, b"imported")


REQUEST_HOW = {
    "segv": r"on signal 11",
    "overflow": r"on signal 11",
    "kill": r"on signal 11",
    "exit2": r"in os\._exit\(2\), exit code 1",
}


@pytest.mark.allow_log(*ALLOW)
@pytest.mark.parametrize("how", sorted(REQUEST_HOW))
def test_crash_in_request(nginx, tmp_path, how):
    srv = nginx(server="""
        location = /static { return 200 "static\\n"; }
        location /app { wsgi_pass {apps}/crash_request.py; }
    """)
    assert get(srv, "/app/")[0] == 200

    with pytest.raises((http.client.HTTPException, ConnectionError)):
        get(srv, f"/app/{how}?q=1", timeout=5)

    assert srv.wait_log(r"\[alert\] .*wsgi: worker process \d+ died %s "
                        r"while running \".*crash_request\.py\" for the "
                        r"request \"GET /app/%s\?q=1\""
                        % (REQUEST_HOW[how], how)), srv.logs_tail()

    # the next worker serves
    for _ in range(5):
        assert get(srv, "/app/", timeout=5)[0] == 200
        assert get(srv, "/static")[0] == 200
    assert "cannot be respawned" not in srv.error_log()


@pytest.mark.allow_log(*ALLOW)
def test_sigkill_in_request_names_the_application(nginx, tmp_path):
    """A worker killed by SIGKILL cannot describe its request: the next
    worker names the application alone."""
    srv = nginx(server="""
        location /app { wsgi_pass {apps}/crash_request.py; }
    """)
    assert get(srv, "/app/")[0] == 200
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        get(srv, "/app/sigkill", timeout=5)
    assert srv.wait_log(r"\[alert\] .*wsgi: worker process \d+ died while "
                        r"running \".*crash_request\.py\"$"), srv.logs_tail()
    assert get(srv, "/app/", timeout=5)[0] == 200



def read_until_closed(s, request):
    """The status of request on socket s, once the server closed the
    connection (within the socket's timeout)."""
    s.sendall(request)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.allow_log(*ALLOW)
def test_probe_holds_no_connection(nginx, tmp_path):
    """A probe is a copy of its worker: the client connections the worker
    closes while the probe imports close for their clients too."""
    srv, app, flag = server(nginx, tmp_path, "segv", workers=1)
    assert srv.wait_log(r"died on signal 11 while importing"), \
        srv.logs_tail()

    # an import that waits in the probe that the next request forks
    wait = tmp_path / "crash.flag.wait"
    wait.write_text("")
    time.sleep(1.2)
    addr = ("127.0.0.1", srv.port)
    try:
        with socket.create_connection(addr, timeout=5) as idle, \
                socket.create_connection(addr, timeout=5) as s:
            # a keep-alive connection open while the probe is forked
            idle.sendall(b"GET /static HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert idle.recv(65536).startswith(b"HTTP/1.1 200")

            # a probe that held them would keep them open until the end
            # of the test: their 5 s timeout fails it
            status = read_until_closed(
                s, b"GET /app HTTP/1.0\r\nHost: localhost\r\n\r\n")
            assert status == 503
            assert srv.wait_log(r"again in probe process"), srv.logs_tail()

            status = read_until_closed(
                idle, b"GET /static HTTP/1.1\r\nHost: localhost\r\n"
                b"Connection: close\r\n\r\n")
            assert status == 200
    finally:
        wait.unlink()


@pytest.mark.allow_log(*ALLOW)
def test_crash_in_request_among_many_threads(nginx, tmp_path):
    """Each thread of a pool of 32 (the default pool's size) has a record
    of its own: the steps that other threads end meanwhile do not clear
    the record of the one that crashes."""
    from concurrent.futures import ThreadPoolExecutor

    srv = nginx(main="thread_pool t threads=32;", server="""
        location /app { wsgi_pass {apps}/crash_request.py;
                        wsgi_thread_pool t; }
    """, workers=1)

    def ok(query):
        return get(srv, "/app/?" + query, timeout=10)[0]

    with ThreadPoolExecutor(64) as ex:
        # every thread of the pool runs a step
        assert list(ex.map(ok, ["0.5"] * 32)) == [200] * 32
        late = ex.submit(get, srv, "/app/late", 10)
        time.sleep(0.2)
        # and the others again, while that one sleeps before crashing
        assert list(ex.map(ok, ["0.2"] * 31)) == [200] * 31
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            late.result()

    assert srv.wait_log(r"\[alert\] .*wsgi: worker process \d+ died on "
                        r"signal 11 while running \".*crash_request\.py\" "
                        r"for the request \"GET /app/late\""), \
        srv.logs_tail()


@pytest.mark.allow_log(*ALLOW, r"failed to load script")
def test_crash_in_import_beside_another_import(nginx, tmp_path):
    """Two threads import two scripts at once, on their first requests:
    the one that crashes after the other returned is still told of, and
    contained, as an import."""
    from concurrent.futures import ThreadPoolExecutor

    flags = {}
    apps = {}
    for name, how in (("a", "sleep"), ("b", "segv")):
        flag = tmp_path / f"{name}.flag"
        flag.write_text("")
        (tmp_path / f"{name}.flag.raise").write_text("")
        flags[name] = flag
        apps[name] = install_app("crash_import.py", tmp_path,
                                 f"crash_{name}.py", HOW=how, FLAG=flag)
    (tmp_path / "b.flag.wait").write_text("")

    srv = nginx(main="thread_pool t threads=4;", server=f"""
        location /a {{ wsgi_pass {apps['a']}; wsgi_thread_pool t; }}
        location /b {{ wsgi_pass {apps['b']}; wsgi_thread_pool t; }}
    """, workers=1)
    assert srv.wait_log(r"failed to load script \".*crash_b\.py"), \
        srv.logs_tail()
    for name in flags:
        (tmp_path / f"{name}.flag.raise").unlink()

    with ThreadPoolExecutor(2) as ex:
        a = ex.submit(get, srv, "/a", 10)
        time.sleep(0.3)
        b = ex.submit(get, srv, "/b", 10)
        assert a.result() == (200, b"imported")
        (tmp_path / "b.flag.wait").unlink()
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            b.result()

    assert srv.wait_log(r"\[error\] .*wsgi: worker process \d+ died on "
                        r"signal 11 while importing script \"%s\""
                        % re.escape(str(apps["b"]))), srv.logs_tail()
    assert "while running" not in srv.error_log()
    assert get(srv, "/b", timeout=5)[0] == 503
    assert get(srv, "/a", timeout=5) == (200, b"imported")


@pytest.mark.allow_log(*ALLOW)
def test_import_retried_by_the_worker_beside_sub_interpreters(nginx,
                                                                tmp_path):
    """A forked child of a worker with sub-interpreters cannot run Python
    (CPython hangs in PyOS_AfterFork_Child): the worker retries the
    import itself, after the delay, and dies again if it still crashes."""
    srv, app, flag = server(nginx, tmp_path, "segv", workers=1,
                            group="crashing")
    assert srv.wait_log(r"died on signal 11 while importing"), \
        srv.logs_tail()
    assert srv.get("/app").status == 503
    assert get(srv, "/hello")[0] == 200

    # still crashing: the worker that retries dies, the next one waits
    assert wait_for(lambda: app_status(srv) in (None, 503) and re.search(
        r"importing script .* again in this worker, as no probe process "
        r"can run Python beside sub-interpreters", srv.error_log()),
        timeout=5, interval=0.1), srv.logs_tail()
    assert wait_for(lambda: exited(srv) >= 2, timeout=5), srv.logs_tail()
    assert "probe process" not in re.sub(r"no probe process", "",
                                         srv.error_log())

    # fixed: a retry after the delay imports it, in its group
    flag.unlink()
    assert wait_for(lambda: app_status(srv) == 200,
                    timeout=10, interval=0.2), srv.logs_tail()
    assert get(srv, "/app") == (200, b"imported")
