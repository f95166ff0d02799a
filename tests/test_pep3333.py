"""PEP 3333 corner cases, sys.stdout and sys.stderr, and the retry of a
script whose import failed (docs/pep3333.md).

Apps: tests/apps/pep_app.py (dispatched on PATH_INFO), and the templates
tests/apps/pep_import_app.py, pep_import_a.py, pep_import_b.py.
"""

import re
import socket
import threading
import time

import pytest

from harness import (Parsed, exchange, install_app, read_side, req, url,
                     wait_for)


APP = "location / { wsgi_pass {apps}/pep_app.py; keepalive_timeout 30s; }"

# An error-log entry: "YYYY/MM/DD HH:MM:SS [level] pid#tid: ..."
ENTRY_RE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] ")


def start(nginx):
    return nginx(server=APP)


def entries(srv, needle):
    """The error-log lines that contain needle."""
    return [ln for ln in srv.error_log().splitlines() if needle in ln]


def wait_entry(srv, needle, timeout=5):
    assert wait_for(lambda: entries(srv, needle), timeout), \
        f"no {needle!r} in the error log\n{srv.logs_tail()}"
    return entries(srv, needle)


def keepalive_pair(srv, path, second="/single"):
    """path and then second on one keep-alive connection: (first, second
    Parsed or None, eof)."""
    data, eof = exchange(srv, req(path, close=False) + req(second))
    p = Parsed(data)
    q = Parsed(p.rest) if p.rest.startswith(b"HTTP/1.1 ") else None
    return p, q, eof


# -- the iterable ------------------------------------------------------------


def test_empty_item_then_exception_is_clean_500(nginx):
    srv = start(nginx)
    data, eof = exchange(srv, req("/empty_raise", close=False))
    p = Parsed(data)
    # nginx's own 500 page, whole (nginx closes the connection after it)
    assert p.code == 500, p
    assert p.framing == "length" and p.complete, p
    assert b"pep-empty-boom" not in data
    assert srv.wait_log(r"\[error\].*wsgi: .*pep-empty-boom"), \
        srv.logs_tail()


def test_close_exception_keeps_the_complete_response(nginx):
    srv = start(nginx)
    p, q, eof = keepalive_pair(srv, "/close_raises")
    assert p.code == 200, p
    assert p.complete, f"response not ended cleanly: {p!r}"
    assert p.body == b"piece-1;piece-2;piece-3", p
    assert q is not None and q.code == 200 and q.body == b"hello", \
        f"the connection did not go on: {p!r}"
    lines = wait_entry(srv, "pep-close-boom")
    assert any("[error]" in ln for ln in lines), lines
    assert entries(srv, 'close() of "'), srv.logs_tail()


def test_write_then_exc_info_reraises_sends_written_and_cuts(nginx):
    srv = start(nginx)
    side = srv.prefix / "side.txt"
    data, eof = exchange(srv, req(url("/write_exc_info", side=side),
                                  close=False))
    assert eof, f"connection not cut: {data!r}"
    p = Parsed(data)
    assert p.code == 200, p
    assert p.body.startswith(b"written-before-error;"), p
    assert not p.complete, f"the response was ended cleanly: {p!r}"
    assert b"error page" not in data
    assert wait_for(lambda: read_side(side)), srv.logs_tail()
    assert read_side(side).splitlines() == ["reraised"]
    assert srv.wait_log(r"\[error\].*wsgi: .*pep-exc-info-boom"), \
        srv.logs_tail()


def test_write_in_close_is_sent(nginx):
    srv = start(nginx)
    side = srv.prefix / "side.txt"
    p, q, eof = keepalive_pair(srv, url("/write_in_close", side=side))
    assert p.code == 200, p
    assert p.complete, p
    assert p.body == b"body;from-close;", p
    assert q is not None and q.body == b"hello", p
    assert read_side(side).splitlines() == ["close: written"]


def test_write_in_close_of_failed_response_raises(nginx):
    srv = start(nginx)
    side = srv.prefix / "side.txt"
    data, eof = exchange(srv, req(url("/fail_in_close", side=side),
                                  close=False))
    assert eof, f"connection not cut: {data!r}"
    p = Parsed(data)
    assert p.code == 200 and not p.complete, p
    assert b"from-close" not in data
    assert wait_for(lambda: read_side(side)), srv.logs_tail()
    assert read_side(side).splitlines() == [
        "close: RuntimeError: write() called from close() of a response "
        "that failed"], read_side(side)
    assert srv.wait_log(r"\[error\].*wsgi: close\(\) of .*raised"), \
        srv.logs_tail()
    assert srv.wait_log(r"\[error\].*wsgi: RuntimeError: write\(\) called "
                        r"from close\(\)"), srv.logs_tail()


def test_write_in_close_of_a_stopped_body_is_dropped(nginx):
    # HEAD under wsgi_optimize_send_headers: nginx stops the body at the
    # headers, and what close() writes goes with the rest of it
    srv = nginx(server="location / { wsgi_pass {apps}/pep_app.py; "
                "wsgi_optimize_send_headers on; keepalive_timeout 30s; }")
    side = srv.prefix / "side.txt"
    data, eof = exchange(srv, req(url("/write_in_close_gen", side=side),
                                  method="HEAD", close=False)
                         + req("/single"))
    p = Parsed(data, head=True)
    assert p.code == 200, p
    assert p.rest.startswith(b"HTTP/1.1 200"), p
    assert Parsed(p.rest).body == b"hello"
    assert b"from-close" not in data
    assert wait_for(lambda: read_side(side)), srv.logs_tail()
    assert read_side(side).splitlines() == ["close: written"]
    assert not entries(srv, "close() of"), srv.logs_tail()


@pytest.mark.parametrize("path, body", [
    ("/single", b"hello"), ("/single_tuple", b"hello tuple")])
def test_single_item_list_keeps_http10_keepalive(nginx, path, body):
    srv = start(nginx)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        request = (f"GET {path} HTTP/1.0\r\nHost: localhost\r\n"
                   "Connection: keep-alive\r\n\r\n").encode()
        for _ in range(2):
            s.sendall(request)
            data = b""
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    break
                if not d:
                    break
                data += d
                if b"\r\n\r\n" in data:
                    p = Parsed(data)
                    if p.framing == "length" and p.complete:
                        break
            p = Parsed(data)
            assert p.code == 200, p
            assert p.all("Content-Length") == [str(len(body))], p
            assert p.body == body, p
            assert (p.header("Connection") or "").lower() == "keep-alive", p
    finally:
        s.close()


def test_head_answered_without_a_body_has_no_length_of_0(nginx):
    # the application does not know its GET body's length: an empty list
    # for HEAD says nothing about it (Apache drops a length of 0 for HEAD)
    srv = start(nginx)
    data, _ = exchange(srv, req("/head_empty", method="HEAD"))
    p = Parsed(data, head=True)
    assert p.code == 200 and p.header("Content-Length") is None, data
    data, _ = exchange(srv, req("/head_empty"))
    assert Parsed(data).body == b"streamed body", data
    # a list of bytes for HEAD, as for GET: its length is the body's
    data, _ = exchange(srv, req("/single", method="HEAD"))
    p = Parsed(data, head=True)
    assert p.all("Content-Length") == ["5"], data


# -- a failed import is undone -----------------------------------------------


def test_failed_import_is_undone_and_retried(nginx):
    d = nginx.next_prefix()
    d.mkdir(parents=True, exist_ok=True)
    marker = d / "imported-once"
    script = install_app("pep_import_app.py", d)
    install_app("pep_import_a.py", d, MARKER=marker)
    install_app("pep_import_b.py", d)
    srv = nginx(http="wsgi_python_path {prefix};",
                server="location / { wsgi_pass {prefix}/pep_import_app.py; }")
    # the import at start failed; the first request tries again, and works
    assert srv.wait_log(r"pep-import-boom"), srv.logs_tail()
    lines = entries(srv, "will be retried")
    assert lines and str(script) in lines[0], srv.logs_tail()
    assert marker.exists()
    r = srv.get("/")
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    assert r.body == b"pep-import-ok"


@pytest.mark.allow_log(r"pep-inflight-boom")
def test_failed_import_leaves_an_import_in_flight_alone(nginx):
    # another thread's import, begun while the script was importing and
    # not done when it failed, is not the failed import's to undo: taken
    # out of sys.modules, it ended in KeyError
    d = nginx.next_prefix()
    d.mkdir(parents=True, exist_ok=True)
    side = d / "inflight.txt"
    marks = {k: d / f"inflight.{k.lower()}"
             for k in ("ARMED", "BEGAN", "STARTED", "FAILED")}
    install_app("pep_inflight_app.py", d, SIDE=side, BEGAN=marks["BEGAN"])
    install_app("pep_inflight_mod.py", d, **marks)
    install_app("pep_inflight_fail.py", d, **marks)
    srv = nginx(http="wsgi_python_path {prefix};", server=(
        "location /ok { wsgi_pass {prefix}/pep_inflight_app.py; }"
        "location /fail { wsgi_pass {prefix}/pep_inflight_fail.py; }"))
    # the script's import begins, the other thread's begins meanwhile, the
    # script's fails, and only then does the other thread's end
    marks["ARMED"].write_text("")
    assert srv.get("/ok").status == 200
    assert srv.get("/fail").status == 500
    assert marks["STARTED"].exists(), srv.logs_tail()
    marks["FAILED"].write_text("")
    assert wait_for(lambda: read_side(side), 5), srv.logs_tail()
    assert read_side(side) == "pep-inflight-ok\n", srv.logs_tail()


@pytest.mark.allow_log(r"pep-slow-import-boom")
def test_concurrent_requests_wait_for_the_import(nginx):
    # requests that arrive while another one imports the script (on a
    # pool) wait for it: they used to find its half-run module in
    # sys.modules, without the callable yet, and answered 500
    d = nginx.next_prefix()
    d.mkdir(parents=True, exist_ok=True)
    install_app("pep_slow_import.py", d, MARKER=d / "failed-once")
    srv = nginx(server="location / { wsgi_pass {prefix}/pep_slow_import.py; }")
    assert srv.wait_log(r"pep-slow-import-boom"), srv.logs_tail()
    results = []

    def get():
        data, _ = exchange(srv, req("/"), timeout=10)
        results.append(Parsed(data))

    threads = [threading.Thread(target=get) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join(15)
    assert [p.code for p in results] == [200] * 3, \
        f"{results}\n{srv.logs_tail()}"
    assert all(p.body == b"pep-slow-import-ok" for p in results)
    assert not entries(srv, "not found in"), srv.logs_tail()


# -- sys.stdout and sys.stderr -----------------------------------------------


def test_stdout_is_a_text_stream_into_the_error_log(nginx):
    srv = start(nginx)
    r = srv.get("/print_parts")
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    info = r.json()
    assert info == {
        "stdout_type": "TextIOWrapper", "is_textio": True,
        "stderr_is_textio": True, "encoding": "utf-8",
        "errors": "backslashreplace", "line_buffering": False,
        "writable": True, "buffer_writable": True,
        "fileno": "UnsupportedOperation",
        "isatty": False, "same_buffer": True}, info
    for needle in ("wsgi: pep-one-two", "wsgi: pep-stderr-line",
                   "wsgi: pep-buffer-bytes", "wsgi: pep-buffer-bad-",
                   "wsgi: pep-flushed-partial",
                   "wsgi: pep-utf8-\u00e9\u4e2d"):
        lines = wait_entry(srv, needle)
        assert len(lines) == 1, lines
        assert ENTRY_RE.match(lines[0]) and "[error]" in lines[0], lines
    # control characters are escaped as nginx escapes client text
    assert entries(srv, "wsgi: pep-cr-a\\x0Dpep-cr-b"), srv.logs_tail()
    assert entries(srv, "wsgi: pep-esc-\\x1B[31m-red"), srv.logs_tail()
    assert not entries(srv, "\x1b"), srv.logs_tail()
    for ln in srv.error_log().splitlines():
        assert "\r" not in ln, ln
        if "pep-" in ln:
            assert ENTRY_RE.match(ln), f"not a log entry: {ln!r}"


def request_entries(srv, uri):
    """The "wsgi: " text of the error-log entries of requests for uri."""
    tail = f', request: "GET {uri} HTTP/1.1"'
    return [ln.split(" wsgi: ", 1)[1].split(", client: ", 1)[0]
            for ln in srv.error_log().splitlines()
            if " wsgi: " in ln and tail in ln]


def test_newline_inside_a_write_makes_no_extra_entry(nginx):
    # line buffering would flush the partial line after any write with a
    # newline or a CR in it: print("a\nb") logged "a", "b" and ""
    srv = start(nginx)
    r = srv.get("/print_newlines")
    assert r.status == 200, r
    wait_entry(srv, "wsgi: pep-nl-end")
    assert request_entries(srv, "/print_newlines") == [
        "pep-nl-a", "pep-nl-b", "pep-nl-cr-a\\x0Dpep-nl-cr-b",
        "pep-nl-part-1", "pep-nl-part-2-more", "pep-nl-end"], \
        srv.logs_tail()


def test_long_line_is_cut_without_an_extra_entry(nginx):
    # print() of a line over 4 KiB: its start is one entry, the rest of the
    # line is dropped, and its newline makes no empty entry
    srv = start(nginx)
    assert srv.get("/print_long").status == 200
    wait_entry(srv, "wsgi: pep-long-after")
    assert len(entries(srv, "wsgi: pep-long-xxxx")) == 1, srv.logs_tail()
    assert request_entries(srv, "/print_long") == ["pep-long-after"], \
        srv.logs_tail()
    # a line cut at the end of a request: the next request's first line
    # is whole
    assert srv.get("/print_long_partial").status == 200
    assert srv.get("/print_newlines").status == 200
    wait_entry(srv, "wsgi: pep-nl-end")
    assert len(entries(srv, "wsgi: pep-long-partial-yyyy")) == 1
    assert request_entries(srv, "/print_newlines")[0] == "pep-nl-a", \
        srv.logs_tail()


def test_partial_line_logged_at_request_end(nginx):
    srv = start(nginx)
    r = srv.get("/print_partial")
    assert r.status == 200 and r.body == b"printed", r
    lines = wait_entry(srv, "wsgi: pep-partial-line")
    assert len(lines) == 1 and ENTRY_RE.match(lines[0]), lines


def test_print_from_a_thread_outside_any_request(nginx):
    srv = start(nginx)
    r = srv.get("/thread_print")
    assert r.status == 200, r
    lines = wait_entry(srv, "wsgi: pep-thread-line")
    assert len(lines) == 1 and ENTRY_RE.match(lines[0]), lines
    assert srv.get("/single").status == 200


def test_partial_line_of_a_thread_logged_at_worker_exit(nginx):
    srv = start(nginx)
    r = srv.get("/thread_partial")
    assert r.status == 200, r
    time.sleep(0.5)
    assert not entries(srv, "pep-exit-partial")
    srv.stop()
    lines = entries(srv, "wsgi: pep-exit-partial")
    assert len(lines) == 1 and ENTRY_RE.match(lines[0]), srv.logs_tail()


def test_wsgi_errors_escapes_control_characters(nginx):
    srv = start(nginx)
    r = srv.get("/errors_ctl")
    assert r.status == 200, r
    wait_entry(srv, "wsgi: pep-errors-a\\x0Dpep-errors-b")
    wait_entry(srv, "wsgi: pep-errors-esc-\\x1B-del-\\x7F-tab-\\x09-end")
    for ln in srv.error_log().splitlines():
        assert "\r" not in ln and "\x1b" not in ln and "\x7f" not in ln, ln
