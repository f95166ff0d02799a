"""Response side: start_response, write(), iterables, framing, streaming.

Apps: tests/apps/resp_app.py (dispatched on PATH_INFO, behind
wsgiref.validate) and tests/apps/resp_file.py (wsgi.file_wrapper).
Where the test must see inside the app (close() calls, progress of a
generator), the app appends to a side file in srv.prefix named by
?side=PATH.
"""

import gzip
import hashlib
import random
import socket
import time
import urllib.parse

import pytest

from harness import (Parsed, exchange, read_all, read_side, req, send,
                     wait_for, wait_stable)


APP = "location / { wsgi_pass {apps}/resp_app.py; %s }"

# A connection that stays open after a complete response must be kept
# open long enough for "EOF seen" to mean "the server closed it".
KEEPALIVE = "keepalive_timeout 30s;"


def start(nginx, extra=""):
    return nginx(server=APP % extra)


def side_url(path, side, **params):
    params["side"] = str(side)
    return path + "?" + urllib.parse.urlencode(params)


# -- start_response and exc_info ---------------------------------------------


def test_exc_info_before_headers_replaces_status_and_headers(nginx):
    srv = start(nginx)
    r = srv.get("/exc_info_before")
    assert r.status == 503, r
    assert r.body == b"replaced body"
    assert r.header("X-Replaced") == "yes"
    assert r.header("X-First") is None, r


def test_exc_info_after_first_chunk_reraises_and_cuts(nginx):
    srv = start(nginx, KEEPALIVE)
    side = srv.prefix / "side.txt"
    data, eof = exchange(srv, req(side_url("/exc_info_after", side),
                                  close=False))
    assert eof, f"connection not cut: {data!r}"
    p = Parsed(data)
    assert p.code == 200, p
    assert p.framing == "chunked", p
    assert p.body.startswith(b"first chunk;"), p
    assert not p.complete, f"terminating chunk sent: {p!r}"
    assert b"SHOULD-NOT-APPEAR" not in data
    assert wait_for(lambda: "reraised" in read_side(side)), read_side(side)
    assert read_side(side).splitlines()[0] == \
        "reraised ValueError late-failure"
    assert srv.wait_log(r"\[error\].*wsgi: .*late-failure"), srv.logs_tail()


def test_exc_info_without_an_exception_after_headers_is_a_type_error(nginx):
    # (None, None, None), what sys.exc_info() gives outside an except
    # block, has nothing to re-raise
    srv = start(nginx)
    r = srv.get("/exc_info_bad_after")
    assert r.status == 200, r
    assert r.body == (b"first;TypeError: start_response() argument 3 must "
                      b"hold an exception, not NoneType"), r


# -- write() -----------------------------------------------------------------


@pytest.mark.parametrize("path, body", [
    ("/write_only", b"one,two,three"),
    ("/write_list", b"w1,w2,i1,i2"),
    ("/write_gen", b"w1,g1,g2"),
])
def test_write_callable(nginx, path, body):
    srv = start(nginx)
    r = srv.get(path)
    assert r.status == 200, r
    assert r.body == body


# -- iterables and close() ---------------------------------------------------


@pytest.mark.parametrize("kind, closed", [
    ("list", None),
    ("tuple", None),
    ("generator", "closed generator"),
    ("custom", "closed custom"),
])
def test_iterable_kinds_and_close(nginx, kind, closed):
    srv = start(nginx)
    side = srv.prefix / "side.txt"
    r = srv.get(side_url("/iterable", side, kind=kind))
    assert r.status == 200, r
    assert r.body == b"alpha,beta,gamma"
    if closed:
        assert wait_for(lambda: closed in read_side(side)), read_side(side)
        assert read_side(side).count("closed") == 1, read_side(side)


# -- framing -----------------------------------------------------------------


def test_app_content_length_used_as_is(nginx):
    srv = start(nginx)
    data, eof = exchange(srv, req("/with_cl"))
    p = Parsed(data)
    assert p.code == 200, p
    assert p.all("Content-Length") == ["11"], p
    assert p.all("Transfer-Encoding") == [], p
    assert p.body == b"hello world" and p.rest == b"", p


def test_no_content_length_is_chunked_on_http11(nginx):
    srv = start(nginx)
    data, eof = exchange(srv, req("/no_cl"))
    p = Parsed(data)
    assert p.code == 200, p
    assert p.framing == "chunked", p
    assert p.all("Content-Length") == [], p
    assert p.complete, p
    assert p.body == b"chunk-one,chunk-two,chunk-three"
    assert p.rest == b"", p


def test_no_content_length_is_close_delimited_on_http10(nginx):
    srv = start(nginx)
    data, eof = exchange(srv, req("/no_cl", version="1.0", close=False))
    assert eof, f"HTTP/1.0 response without length not closed: {data!r}"
    p = Parsed(data)
    assert p.code == 200, p
    assert p.framing == "close", p
    assert p.body == b"chunk-one,chunk-two,chunk-three"


def test_body_longer_than_content_length_is_cut_and_keepalive_continues(
        nginx):
    srv = start(nginx, KEEPALIVE)
    data, eof = exchange(srv, req("/too_long", close=False)
                         + req("/second"))
    assert eof, data
    first = Parsed(data)
    assert first.code == 200, first
    assert first.all("Content-Length") == ["5"], first
    assert first.body == b"hello", first
    assert first.rest.startswith(b"HTTP/1.1 "), \
        f"excess body bytes sent or second request unanswered: {first!r}"
    second = Parsed(first.rest)
    assert second.code == 200, second
    assert second.body == b"second" and second.rest == b"", second
    assert b"EXTRA" not in data


def test_body_shorter_than_content_length_closes_connection(nginx):
    srv = start(nginx, KEEPALIVE)
    t0 = time.monotonic()
    data, eof = exchange(srv, req("/too_short", close=False))
    assert eof, f"connection left open after short body: {data!r}"
    assert time.monotonic() - t0 < 4
    p = Parsed(data)
    assert p.code == 200, p
    assert p.all("Content-Length") == ["100"], p
    assert p.body == b"short" and not p.complete, p


@pytest.mark.parametrize("path", ["/with_cl", "/no_cl"])
def test_head_has_no_body(nginx, path):
    srv = start(nginx, KEEPALIVE)
    # the HEAD response must not carry body bytes: the pipelined GET's
    # response follows the HEAD response's header block immediately
    data, eof = exchange(srv, req(path, method="HEAD", close=False)
                         + req("/second"))
    p = Parsed(data, head=True)
    assert p.code == 200, p
    if path == "/with_cl":
        assert p.all("Content-Length") == ["11"], p
    assert p.rest.startswith(b"HTTP/1.1 200"), f"HEAD sent a body: {p!r}"
    second = Parsed(p.rest)
    assert second.body == b"second" and second.rest == b"", second


@pytest.mark.parametrize("code", ["204", "304"])
@pytest.mark.parametrize("app_body", [False, True],
                         ids=["empty", "app_sends_body"])
def test_204_304_have_no_body(nginx, code, app_body):
    srv = start(nginx, KEEPALIVE)
    q = f"/status?code={code}" + ("&body=1" if app_body else "")
    data, eof = exchange(srv, req(q, close=False) + req("/second"))
    p = Parsed(data)
    assert p.code == int(code), p
    assert p.all("Transfer-Encoding") == [], p
    assert p.all("X-Code") == [code], p
    assert p.rest.startswith(b"HTTP/1.1 200"), \
        f"{code} response carried body bytes: {p!r}"
    second = Parsed(p.rest)
    assert second.body == b"second" and second.rest == b"", second


@pytest.mark.parametrize("cl", [False, True], ids=["no_cl", "app_cl"])
def test_gzip_filter_applies(nginx, cl):
    srv = start(nginx, "gzip on; gzip_types text/plain; gzip_min_length 1;")
    path = "/text" + ("?cl=1" if cl else "")
    expected = b"".join(b"line %05d of some compressible text\n" % i
                        for i in range(1000))
    r = srv.get(path, headers={"Accept-Encoding": "gzip"})
    assert r.status == 200, r
    assert r.header("Content-Encoding") == "gzip", r
    assert len(r.body) < len(expected) // 2
    assert gzip.decompress(r.body) == expected
    plain = srv.get(path)
    assert plain.header("Content-Encoding") is None, plain
    assert plain.body == expected


def test_keepalive_several_requests_one_connection(nginx):
    srv = start(nginx)
    conn = srv.connection(timeout=5)
    try:
        seen = []
        for mode in ("cl", "chunked", "write", "cl"):
            conn.request("GET", "/keepalive?mode=" + mode)
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200, (mode, body)
            assert (r.getheader("Connection") or "").lower() != "close"
            assert not r.will_close, mode
            local_port = conn.sock.getsockname()[1]
            assert body == b"port=%d" % local_port, (mode, body)
            seen.append((id(conn.sock), local_port))
        assert len(set(seen)) == 1, seen
    finally:
        conn.close()


def test_app_date_and_server_headers_once(nginx):
    srv = start(nginx)
    data, eof = exchange(srv, req("/date_server"))
    p = Parsed(data)
    assert p.code == 200, p
    assert p.all("Date") == ["Mon, 01 Jan 2001 00:00:00 GMT"], p
    assert p.all("Server") == ["resp-app/1.0"], p


def test_custom_reason_phrase_kept(nginx):
    srv = start(nginx)
    data, eof = exchange(srv, req("/reason"))
    assert data.startswith(b"HTTP/1.1 299 Custom Thing\r\n"), data[:200]
    r = srv.get("/reason")
    assert (r.status, r.reason, r.body) == (299, "Custom Thing", b"custom")


@pytest.mark.parametrize("cl", [False, True], ids=["chunked", "app_cl"])
def test_large_response_integrity(nginx, cl):
    srv = start(nginx)
    size = 8 * 1024 * 1024 + 12345
    q = f"/big?size={size}&seed=7" + ("&cl=1" if cl else "")
    r = srv.get(q)
    assert r.status == 200, r
    expected = random.Random(7).randbytes(size)
    assert len(r.body) == size
    assert hashlib.sha256(r.body).digest() == \
        hashlib.sha256(expected).digest()


# -- streaming and flow control ----------------------------------------------


def test_streaming_first_chunk_before_the_second_is_made(nginx):
    # the generator makes the second chunk only once the test has seen
    # the first one (or after 10 s)
    srv = start(nginx)
    go = srv.prefix / "go"
    s = send(srv, req("/stream?" + urllib.parse.urlencode({"go": go})),
             timeout=10)
    try:
        early, eof = read_all(s, 5, until=b"first-chunk;")
        assert not eof, early
        go.write_text("go")
        rest, eof = read_all(s, 10)
    finally:
        s.close()
    assert b"first-chunk;" in early, f"first chunk held back: {early!r}"
    assert b"second-chunk" not in early, early
    assert eof, rest
    p = Parsed(early + rest)
    assert p.complete and p.body == b"first-chunk;second-chunk", p


def _slow_client(srv, path):
    """A connected socket with a small receive buffer that sent `path`."""
    # a fixed small buffer (no autotuning) so the kernel cannot absorb
    # the stream on the client's behalf
    return send(srv, req(path), rcvbuf=65536)


def _progress(side):
    try:
        return int(side.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def test_slow_reader_backpressure(nginx):
    srv = start(nginx)
    side = srv.prefix / "progress"
    n = 512         # 32 MiB; n // 4 chunks, twice tcp_wmem's 4 MiB default
    s = _slow_client(srv, side_url("/backpressure", side, n=n))
    try:
        assert wait_for(lambda: _progress(side) > 0), "generator not started"
        stalled = wait_stable(lambda: _progress(side))
        assert stalled < n // 4, \
            f"{stalled} of {n} 64 KiB chunks produced for a non-reading client"
        time.sleep(0.3)
        assert _progress(side) - stalled <= 2, "generator still running"
        data, eof = read_all(s, 30)
    finally:
        s.close()
    p = Parsed(data)
    assert p.code == 200, p
    assert len(p.body) == n * 65536, f"got {len(p.body)} body bytes"
    assert p.body.count(b"x") == n * 65536
    assert _progress(side) == n
    closed = side.with_name(side.name + ".closed")
    assert wait_for(closed.exists), "close() not called"


def test_slow_reader_does_not_block_worker(nginx):
    srv = start(nginx)
    side = srv.prefix / "progress"
    s = _slow_client(srv, side_url("/backpressure", side, n=1024))
    try:
        assert wait_for(lambda: _progress(side) > 0), "generator not started"
        wait_stable(lambda: _progress(side))
        # the only worker must still serve others while this client stalls
        t0 = time.monotonic()
        data, eof = exchange(srv, req("/ok"), timeout=3)
        assert b"\r\n\r\n" in data, \
            f"worker busy with the stalled stream ({data!r} after " \
            f"{time.monotonic() - t0:.2f}s)"
        p = Parsed(data)
        assert p.code == 200 and p.body == b"ok", p
    finally:
        s.close()
    closed = side.with_name(side.name + ".closed")
    assert wait_for(closed.exists), "close() not called after disconnect"


def test_client_disconnect_mid_stream_calls_close(nginx):
    srv = start(nginx)
    side = srv.prefix / "side.txt"
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        s.sendall(req(side_url("/forever", side)))
        buf = b""
        while b"tick 1\n" not in buf:
            d = s.recv(65536)
            assert d, buf
            buf += d
    finally:
        s.close()
    assert wait_for(lambda: "closed forever" in read_side(side)), \
        f"close() not called after disconnect: {read_side(side)!r}"
    assert "finished" not in read_side(side)


# -- wsgi.file_wrapper -------------------------------------------------------


@pytest.mark.parametrize("mode", ["seek", "read", "bytesio", "custom"])
@pytest.mark.parametrize("callable_", ["application", "validated"])
def test_file_wrapper(nginx, mode, callable_):
    srv = nginx(server="location / { wsgi_pass {apps}/resp_file.py %s; }"
                % callable_)
    data = random.Random(3).randbytes(300_000)
    path = srv.prefix / "data.bin"
    path.write_bytes(data)
    r = srv.get("/?" + urllib.parse.urlencode({"path": path, "mode": mode}))
    assert r.status == 200, r
    assert len(r.body) == len(data) - 100
    assert r.body == data[100:], "file_wrapper did not start at offset 100"
    assert wait_for(lambda: srv.get("/closed").body == b"True"), \
        "file-like not closed: " + srv.get("/closed").text


def test_file_wrapper_blksize(nginx):
    srv = nginx(server="location / { wsgi_pass {apps}/resp_file.py; }")
    data = random.Random(4).randbytes(20_000)
    path = srv.prefix / "data.bin"
    path.write_bytes(data)
    for blksize in (1, 1000, 65536):
        r = srv.get("/?" + urllib.parse.urlencode(
            {"path": path, "mode": "custom", "blksize": blksize}))
        assert r.status == 200, r
        assert r.body == data[100:], blksize
        assert r.header("X-Wrapper") == f"{blksize} True", r


def test_header_strs_checked_once_stay_checked_for_their_role(nginx):
    """start_response() remembers the strs it found valid; one valid as a
    value is still refused as a name, and an invalid one keeps being
    refused, request after request."""
    srv = nginx(server="location / { wsgi_pass {apps}/resp_reuse_app.py "
                       "app; }")
    for _ in range(3):
        r = srv.get("/value")
        assert r.status == 200
        assert dict(r.headers).get("X-Test") == "text/plain; a b"
        assert srv.get("/name").status == 500
        r = srv.get("/crlf")
        assert r.status == 500
        assert "Injected" not in dict(r.headers)
    log = srv.error_log()
    assert log.count("is not a valid HTTP token") == 3, srv.logs_tail()
    assert log.count("contains CR, LF or NUL") == 3, srv.logs_tail()
