"""Application errors (SPEC "Errors").

Every test also checks that the worker that saw the error is still the
one serving: the worker pids are unchanged and a normal request gets 200.
Apps: tests/apps/err_*.py.
"""

import re
import time
import urllib.parse

import pytest

from harness import APPS_DIR, Parsed, exchange, read_side, wait_for


SECRET = "boom-secret-4711"          # what err_raise.py raises with
KEEPALIVE = "keepalive_timeout 30s;"  # so that EOF means "cut"

# An error-log entry: "YYYY/MM/DD HH:MM:SS [level] pid#tid: ..."
ENTRY_RE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] ")


def log_since(srv, mark):
    return srv.error_log()[mark:]


def wait_new_log(srv, mark, regex, timeout=5):
    """Wait until regex matches the error log written after `mark`."""
    rx = re.compile(regex, re.M)
    deadline = time.monotonic() + timeout
    while True:
        text = log_since(srv, mark)
        m = rx.search(text)
        if m or time.monotonic() > deadline:
            assert m, f"no {regex!r} in the new error log:\n{text[-3000:]}"
            return text
        time.sleep(0.02)


def assert_worker_ok(srv, pids, path="/ok"):
    r = srv.get(path)
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    assert srv.worker_pids() == pids, "worker replaced after the error"
    return r


def keepalive_get(path):
    # no "Connection: close": only an error can end this connection early
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def wsgi_lines(text):
    """The error-log lines that carry application output."""
    return [ln for ln in text.splitlines() if "wsgi: " in ln]


def assert_one_line_entries(text, needles):
    """Every log line mentioning any of needles is a whole log entry."""
    for line in text.splitlines():
        if any(n in line for n in needles):
            assert ENTRY_RE.match(line), \
                f"continuation line, not a log entry: {line!r}"
            assert "wsgi: " in line, f"no 'wsgi: ' prefix: {line!r}"


# -- exceptions --------------------------------------------------------------


RAISE = "location / { wsgi_pass {apps}/err_raise.py; %s }" % KEEPALIVE


@pytest.mark.parametrize("path", [
    "/before_start", "/after_start", "/in_first_next"])
def test_exception_before_headers_is_500_with_traceback(nginx, path):
    srv = nginx(server=RAISE)
    pids = srv.worker_pids()
    side = srv.prefix / "side.txt"
    mark = len(srv.error_log())
    r = srv.get(path + "?" + urllib.parse.urlencode({"side": side}))
    assert r.status == 500, r
    assert SECRET.encode() not in r.body, r
    assert b"Traceback" not in r.body and b"ValueError" not in r.body, r

    log = wait_new_log(srv, mark, r"wsgi: ValueError: " + SECRET)
    script = str(APPS_DIR / "err_raise.py")
    tb = [ln for ln in wsgi_lines(log)
          if "Traceback" in ln or 'File "' in ln or SECRET in ln]
    assert any("wsgi: Traceback (most recent call last):" in ln
               for ln in tb), log
    assert any(re.search(r'wsgi:   File "%s", line \d+, in fail_in_helper'
                         % re.escape(script), ln) for ln in tb), log
    for ln in tb:
        assert ENTRY_RE.match(ln).group(1) == "error", ln
    assert_one_line_entries(log, ["Traceback", 'File "', SECRET,
                                  "fail_in_helper()"])
    if path == "/in_first_next":
        assert wait_for(lambda: "closed" in read_side(side)), \
            "close() not called after the exception"
    assert_worker_ok(srv, pids)


@pytest.mark.parametrize("path", ["/after_first_chunk",
                                  "/after_first_chunk_cl"])
def test_exception_after_first_chunk_cuts_connection(nginx, path):
    srv = nginx(server=RAISE)
    pids = srv.worker_pids()
    side = srv.prefix / "side.txt"
    mark = len(srv.error_log())
    data, eof = exchange(srv, keepalive_get(
        path + "?" + urllib.parse.urlencode({"side": side})))
    assert eof, f"connection not cut after the exception: {data!r}"
    p = Parsed(data)
    assert p.status_line == "HTTP/1.1 200 OK", p
    if path.endswith("_cl"):
        assert p.all("Content-Length") == ["100"], p
    else:
        assert p.framing == "chunked", p
    assert p.body == b"partial-data;", p
    assert not p.complete, f"the whole body or its 0-chunk sent: {p!r}"
    log = wait_new_log(srv, mark, r"\[error\].*wsgi: ValueError: " + SECRET)
    assert "wsgi: Traceback (most recent call last):" in log, log
    assert wait_for(lambda: "closed" in read_side(side)), \
        "close() not called after the exception"
    assert_worker_ok(srv, pids)


# -- invalid application output ----------------------------------------------


INVALID = "location / { wsgi_pass {apps}/err_invalid.py; }"

HOP_BY_HOP = ["connection", "keep-alive", "transfer-encoding", "upgrade",
              "te", "trailer", "proxy-authenticate", "proxy-authorization"]


@pytest.mark.parametrize("path", [
    "/status_no_reason",
    "/status_abc",
    "/status_int",
    "/status_short_code",
    "/header_name_bytes",
    "/header_value_bytes",
    "/header_value_int",
    "/header_value_cr",
    "/header_value_lf",
    "/header_not_tuple",
    "/headers_not_list",
    "/returns_none",
    "/start_twice",
    "/yield_before_start",
    "/str_chunk_first",
] + ["/hop_" + h for h in HOP_BY_HOP])
def test_invalid_output_is_500(nginx, path):
    srv = nginx(server=INVALID)
    pids = srv.worker_pids()
    mark = len(srv.error_log())
    r = srv.get(path)
    assert r.status == 500, r
    assert b"should not be sent" not in r.body and b"too early" not in r.body
    assert r.header("Injected") is None, r
    assert r.header("X-Bad") is None, r
    wait_new_log(srv, mark, r"\[error\].*wsgi")
    assert_worker_ok(srv, pids)


def test_invalid_chunk_after_headers_cuts_connection(nginx):
    srv = nginx(server="location / { wsgi_pass {apps}/err_invalid.py; %s }"
                % KEEPALIVE)
    pids = srv.worker_pids()
    mark = len(srv.error_log())
    data, eof = exchange(srv, keepalive_get("/str_chunk_later"))
    assert eof, f"connection not cut: {data!r}"
    p = Parsed(data)
    assert p.status_line == "HTTP/1.1 200 OK", p
    assert p.framing == "chunked", p
    assert p.body == b"good bytes;" and not p.complete, p
    wait_new_log(srv, mark, r"\[error\].*wsgi")
    assert_worker_ok(srv, pids)


# -- import failures and missing callables -----------------------------------


BROKEN = {
    "syntax_error": ("def application(environ, start_response:\n"
                     "    pass\n", r"wsgi: SyntaxError"),
    "raises": ("raise RuntimeError('import-boom-99')\n",
               r"wsgi: RuntimeError: import-boom-99"),
}

FIXED = '''\
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fixed and imported"]
'''


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_import_failure_is_500_and_retried(nginx, kind):
    source, err_re = BROKEN[kind]
    script = nginx.next_prefix() / "app.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(source)
    srv = nginx(server="location / { wsgi_pass {prefix}/app.py; }\n"
                "location = /ok { wsgi_pass {apps}/err_ok.py; }")
    pids = srv.worker_pids()
    counts = []
    for _ in range(2):
        mark = len(srv.error_log())
        r = srv.get("/")
        assert r.status == 500, r
        assert b"import-boom" not in r.body, r
        log = wait_new_log(srv, mark, err_re)
        assert str(script) in log, f"script path not logged:\n{log}"
        assert re.search(r"\[error\].*" + err_re, log), log
        counts.append(len(re.findall(err_re, log)))
    # the second request logged the failure again: the import was retried
    assert all(c >= 1 for c in counts), counts
    assert_worker_ok(srv, pids)

    assert len(FIXED) != len(source)    # no stale .pyc with the same size
    script.write_text(FIXED)
    r = srv.get("/")
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    assert r.body == b"fixed and imported"
    assert srv.worker_pids() == pids


@pytest.mark.parametrize("callable_", ["missing_app", ""])
def test_missing_callable_is_500(nginx, callable_):
    srv = nginx(server="location / { wsgi_pass {apps}/err_nocallable.py %s; }"
                "\nlocation = /ok { wsgi_pass {apps}/err_ok.py; }"
                % callable_)
    pids = srv.worker_pids()
    name = callable_ or "application"
    mark = len(srv.error_log())
    r = srv.get("/")
    assert r.status == 500, r
    assert b"wrong callable" not in r.body
    wait_new_log(srv, mark, r"\[error\].*\b%s\b" % name)
    assert_worker_ok(srv, pids)


# -- wsgi.errors, stdout, stderr ---------------------------------------------


def test_wsgi_errors_and_print_go_to_error_log(nginx):
    srv = nginx(server=RAISE)
    pids = srv.worker_pids()
    mark = len(srv.error_log())
    r = srv.get("/errors")
    assert r.status == 200 and r.body == b"logged", r
    names = ["errline-a", "errline-b", "errline-c", "errline-d",
             "stdout-line", "stderr-line"]
    log = wait_new_log(srv, mark, r"wsgi: stdout-line")
    log = wait_new_log(srv, mark, r"wsgi: stderr-line")
    lines = wsgi_lines(log)
    for n in names:
        hits = [ln for ln in lines if re.search(r"wsgi: %s(,|$)" % n, ln)]
        assert len(hits) == 1, f"{n}: {hits}\n{log}"
        assert ENTRY_RE.match(hits[0]), hits[0]
    # one entry per line: no entry holds two of them, none is empty
    for ln in lines:
        assert sum(n in ln for n in names) <= 1, ln
        assert not re.search(r"wsgi: *(,|$)", ln), f"empty entry: {ln!r}"
    assert_worker_ok(srv, pids)


# -- request-scoped objects used after their request -------------------------


def test_request_scoped_objects_expire(nginx):
    srv = nginx(server="location / { wsgi_pass {apps}/err_stale.py; }\n"
                "location = /ok { wsgi_pass {apps}/err_ok.py; }")
    pids = srv.worker_pids()
    r = srv.get("/store")
    assert r.status == 200 and r.body == b"stored", r
    r = srv.post("/use", b"body of the second request")
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    assert r.header("X-Stale") is None, r
    lines = r.text.splitlines()
    assert [ln.split(":")[0] for ln in lines] == [
        "input.read", "input.readline", "start_response", "write"], lines
    for ln in lines:
        assert ln.split(": ")[1] == "RuntimeError", lines
    assert b"stale write" not in r.body
    assert_worker_ok(srv, pids)
