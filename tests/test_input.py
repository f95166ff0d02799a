"""wsgi.input (SPEC.md "Body"), through tests/apps/input_app.py, and chunked
request bodies sent on a raw socket to tests/apps/feat_app.py."""

import hashlib
import json
import re
import socket
import time

import pytest

from harness import Parsed, body_bytes, read_all

INPUT = "wsgi_pass {apps}/input_app.py;"
TMP_MSG = r"a client request body is buffered to a temporary file"


def input_server(nginx, extra="", http=""):
    return nginx(http=http, server=f"location / {{ {INPUT} {extra} }}")


def post(srv, mode, body, n=None, headers=None):
    q = f"/?mode={mode}" + (f"&n={n}" if n is not None else "")
    r = srv.post(q, body, headers=headers)
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    return r.json()


def responses(data):
    """Consecutive responses: [(status line, {lowercase name: value},
    body)]."""
    out = []
    while data:
        p = Parsed(data)
        out.append((p.status_line, {k.lower(): v for k, v in p.headers},
                    p.body))
        data = p.rest
    return out


def chunked(body, size):
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def pattern(n):
    """n bytes, not periodic at buffer sizes."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d" % i).digest()
        i += 1
    return bytes(out[:n])


def lines_of(body):
    """Split after each b"\\n" only (bytes.splitlines also splits at
    \\r, \\x0b, \\x0c, \\x1c..., file readline() does not)."""
    return re.findall(rb"[^\n]*\n|[^\n]+\Z", body)


EOF_AFTER = ["b''", "b''", "b''", "[]"]


# -- read --------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["read", "read_neg", "read_none"])
def test_read_all(nginx, mode):
    srv = input_server(nginx)
    body = b"hello world\nsecond line"
    j = post(srv, mode, body, headers={"Content-Type": "text/plain"})
    assert j["pieces"] == [body.decode()]
    assert j["types"] == ["bytes"]
    assert j["after"] == EOF_AFTER
    assert j["content_length"] == str(len(body))
    assert j["content_type"] == "text/plain"


@pytest.mark.parametrize("n", [1, 3, 7, 64, 1000])
def test_read_size(nginx, n):
    srv = input_server(nginx)
    body = bytes(range(48, 48 + 75))
    j = post(srv, "read_n", body, n=n)
    assert j["len"] == len(body)
    assert j["sha256"] == hashlib.sha256(body).hexdigest()
    assert all(0 < x <= n for x in j["lengths"][:-1]), j["lengths"]
    assert j["lengths"][-1] == 0
    assert j["after"] == EOF_AFTER


def test_read_zero(nginx):
    srv = input_server(nginx)
    j = post(srv, "read_zero", b"abc")
    assert j["pieces"] == ["", "abc"]


def test_read_empty_body_get(nginx):
    srv = input_server(nginx)
    r = srv.get("/?mode=read")
    assert r.status == 200
    j = r.json()
    assert j["pieces"] == [""]
    assert j["after"] == EOF_AFTER
    assert j["content_length"] is None


def test_read_content_length_zero(nginx):
    srv = input_server(nginx)
    j = post(srv, "readline", b"", headers={"Content-Length": "0"})
    assert j["pieces"] == [""]
    assert j["after"] == EOF_AFTER


def test_binary_body_round_trip(nginx):
    srv = input_server(nginx)
    body = bytes(range(256)) * 8 + b"\r\n\x00\r\n"
    r = srv.post("/?mode=echo", body)
    assert r.status == 200
    assert r.body == body


# -- readline / readlines / iteration ----------------------------------------

LINES_BODY = b"a\nbb\n\nccc\r\nlast without newline"
LINES = ["a\n", "bb\n", "\n", "ccc\r\n", "last without newline"]


def test_readline(nginx):
    srv = input_server(nginx)
    j = post(srv, "readline", LINES_BODY)
    assert j["pieces"] == LINES + [""]
    assert j["after"] == EOF_AFTER


@pytest.mark.parametrize("n", [1, 2, 5])
def test_readline_size(nginx, n):
    srv = input_server(nginx)
    body = b"abcdefg\nh\n\nijklmnopq"
    j = post(srv, "readline_n", body, n=n)
    pieces = j["pieces"]
    assert "".join(pieces) == body.decode()
    assert pieces[-1] == ""
    for p in pieces[:-1]:
        assert 0 < len(p) <= n, pieces
        assert "\n" not in p[:-1], pieces     # never crosses a newline
    # a piece ends exactly at each newline
    ends = [i for i, p in enumerate(pieces) if p.endswith("\n")]
    assert len(ends) == body.count(b"\n")


def test_readlines(nginx):
    srv = input_server(nginx)
    j = post(srv, "readlines", LINES_BODY)
    assert j["pieces"] == LINES
    assert j["after"] == EOF_AFTER


def test_readlines_hint(nginx):
    srv = input_server(nginx)
    body = b"".join(b"line%02d\n" % i for i in range(20))    # 7 bytes each
    j = post(srv, "readlines_hint", body, n=10)
    got = j["pieces"]
    all_lines = [ln.decode() for ln in lines_of(body)]
    # a hint may be honoured (stop once >= hint bytes) or ignored (PEP 3333)
    assert got == all_lines[:len(got)]
    assert sum(map(len, got)) >= 10
    assert "".join(got) + j["after"][0] == body.decode()


def test_iteration(nginx):
    srv = input_server(nginx)
    j = post(srv, "iter", LINES_BODY)
    assert j["pieces"] == LINES
    assert j["after"] == EOF_AFTER


def test_mixed_reads(nginx):
    srv = input_server(nginx)
    j = post(srv, "mixed", b"abcdef\nghi\njk")
    assert j["pieces"] == ["abc", "def\n", "gh", "i\n", "jk"]
    assert j["after"] == EOF_AFTER


def test_readline_empty_body(nginx):
    srv = input_server(nginx)
    r = srv.get("/?mode=readlines")
    assert r.json()["pieces"] == []


# -- memory vs temp file bodies ----------------------------------------------

def test_body_in_memory(nginx):
    srv = input_server(nginx, http="client_body_buffer_size 256k;")
    body = pattern(100 * 1024)
    j = post(srv, "read", body)
    assert (j["len"], j["sha256"]) == (len(body),
                                       hashlib.sha256(body).hexdigest())
    assert not srv.wait_log(TMP_MSG, timeout=0)


@pytest.mark.parametrize("mode", ["echo", "readline", "read_n"])
def test_body_read_with_the_headers(nginx, mode):
    """A 20 KiB body sent with its headers in one piece lands in nginx's
    client_header_buffer_size buffer, not in a body buffer of its own; a
    second request follows it in that same buffer."""
    srv = input_server(nginx, http="client_header_buffer_size 32k;")
    body = b"".join(pattern(97 + i % 13) + b"\n" for i in range(200))
    assert 16 * 1024 < len(body) < 30 * 1024
    head = (f"POST /?mode={mode}&n=1000 HTTP/1.1\r\nHost: h\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    tail = b"POST /?mode=read HTTP/1.1\r\nHost: h\r\n" \
           b"Content-Length: 4\r\nConnection: close\r\n\r\nlast"
    rs = responses(srv.raw(head + body + tail))
    assert [st.split()[1] for st, _, _ in rs] == ["200", "200"], rs
    if mode == "echo":
        assert rs[0][2] == body
    else:
        j = json.loads(rs[0][2])
        assert (j["len"], j["sha256"]) == (len(body),
                                           hashlib.sha256(body).hexdigest())
        if mode == "readline":
            assert j["lengths"][:-1] == [len(x) for x in lines_of(body)]
    assert json.loads(rs[1][2])["pieces"] == ["last"]


@pytest.mark.parametrize("mode,n", [("read", None), ("read_n", 65536),
                                    ("read_n", 1000), ("readline", None),
                                    ("iter", None)])
def test_2mib_body_in_temp_file(nginx, mode, n):
    srv = input_server(nginx, http="client_body_buffer_size 1k;"
                                   " client_max_body_size 10m;")
    body = pattern(2 * 1024 * 1024)
    j = post(srv, mode, body, n=n)
    assert j["len"] == len(body)
    assert j["sha256"] == hashlib.sha256(body).hexdigest()
    assert j["content_length"] == str(len(body))
    assert j["after"] == EOF_AFTER
    if mode in ("readline", "iter"):
        expected = [len(x) for x in lines_of(body)]
        got = [x for x in j["lengths"] if x]
        assert got == expected
    assert srv.wait_log(TMP_MSG, timeout=2), "body was not in a temp file"


def test_temp_file_lines_across_buffer_boundaries(nginx):
    srv = input_server(nginx, http="client_body_buffer_size 1k;"
                                   " client_max_body_size 10m;")
    body = b"".join(b"line %d %s\n" % (i, b"x" * (i % 97))
                    for i in range(3000))
    j = post(srv, "readline", body)
    assert [x for x in j["lengths"] if x] == \
        [len(x) for x in lines_of(body)]
    assert j["sha256"] == hashlib.sha256(body).hexdigest()
    r = srv.post("/?mode=echo", body)
    assert r.body == body
    assert srv.wait_log(TMP_MSG, timeout=2)


def test_client_body_in_file_only(nginx):
    srv = input_server(nginx, extra="client_body_in_file_only on;")
    j = post(srv, "read", b"small body in a file")
    assert j["pieces"] == ["small body in a file"]
    j = post(srv, "readline", LINES_BODY)
    assert j["pieces"] == LINES + [""]
    j = post(srv, "read_n", b"0123456789", n=4)
    assert "".join(j["pieces"]) == "0123456789"
    # nginx keeps the file (on, not clean): the body really went to a file
    files = [p for p in (srv.prefix / "temp" / "client_body").rglob("*")
             if p.is_file()]
    assert files


def test_client_body_in_file_only_empty_get(nginx):
    srv = input_server(nginx, extra="client_body_in_file_only clean;")
    r = srv.get("/?mode=read")
    assert r.status == 200
    assert r.json()["pieces"] == [""]


# -- chunked request bodies --------------------------------------------------

def chunked_request(srv, mode, chunks_bytes, n=None, extra_headers=""):
    q = f"/?mode={mode}" + (f"&n={n}" if n is not None else "")
    req = (f"POST {q} HTTP/1.1\r\nHost: h\r\n"
           f"Transfer-Encoding: chunked\r\n{extra_headers}"
           "Connection: close\r\n\r\n").encode() + chunks_bytes
    data = srv.raw(req)
    (status, headers, body), = responses(data)
    return status, body


def test_chunked_body(nginx):
    srv = input_server(nginx)
    status, body = chunked_request(
        srv, "read", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert " 200 " in status, body
    j = json.loads(body)
    assert j["pieces"] == ["hello world"]
    assert j["content_length"] == "11"
    assert j["after"] == EOF_AFTER


def test_chunked_body_zero_length(nginx):
    srv = input_server(nginx)
    status, body = chunked_request(srv, "read", b"0\r\n\r\n")
    assert " 200 " in status, body
    j = json.loads(body)
    assert j["pieces"] == [""]
    assert j["content_length"] == "0"
    assert j["after"] == EOF_AFTER


def test_chunked_body_readline(nginx):
    srv = input_server(nginx)
    status, body = chunked_request(srv, "readline", chunked(LINES_BODY, 3))
    assert " 200 " in status, body
    j = json.loads(body)
    assert j["pieces"] == LINES + [""]
    assert j["content_length"] == str(len(LINES_BODY))


def test_chunked_body_in_temp_file(nginx):
    srv = input_server(nginx, http="client_body_buffer_size 1k;"
                                   " client_max_body_size 10m;")
    payload = pattern(300 * 1024)
    status, body = chunked_request(srv, "read_n", chunked(payload, 10000),
                                   n=4096)
    assert " 200 " in status, body
    j = json.loads(body)
    assert j["len"] == len(payload)
    assert j["sha256"] == hashlib.sha256(payload).hexdigest()
    assert j["content_length"] == str(len(payload))
    assert srv.wait_log(TMP_MSG, timeout=2)


# -- limits ------------------------------------------------------------------

def test_413_client_max_body_size(nginx, tmp_path):
    marker = tmp_path / "called"
    srv = nginx(server="client_max_body_size 1k;"
                       " location / { wsgi_pass {apps}/slow_app.py; }",
                prefix=tmp_path / "p")
    r = srv.post(f"/?t=0&marker={marker}", b"x" * 2000)
    assert r.status == 413
    assert not marker.exists(), "app was called for a 413 request"
    r = srv.post(f"/?t=0&marker={marker}", b"x" * 1000)
    assert r.status == 200
    assert marker.exists()


def test_413_chunked(nginx):
    srv = nginx(server=f"client_max_body_size 1k; location / {{ {INPUT} }}")
    status, _ = chunked_request(srv, "read", chunked(b"y" * 3000, 500))
    assert " 413 " in status
    assert srv.post("/?mode=read", b"ok").json()["pieces"] == ["ok"]


# -- keep-alive --------------------------------------------------------------

def test_pipelined_bodies(nginx):
    srv = input_server(nginx)
    req = (b"POST /?mode=read HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"
           b"first"
           b"POST /?mode=readline HTTP/1.1\r\nHost: h\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"sec\nond", 2) +
           b"GET /?mode=read HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    rs = responses(srv.raw(req))
    assert len(rs) == 3, rs
    assert [json.loads(b)["pieces"] for _, _, b in rs] == \
        [["first"], ["sec\n", "ond", ""], [""]]


def test_unread_body_does_not_break_keepalive(nginx):
    srv = nginx(server="location / { wsgi_pass {apps}/hello.py; }"
                       f" location /in {{ {INPUT} }}")
    conn = srv.connection()
    for i in range(3):
        conn.request("POST", "/", body=b"z" * (5000 + i))
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"Hello, World!\n")
        conn.request("POST", "/in?mode=read", body=b"next%d" % i)
        r = conn.getresponse()
        assert json.loads(r.read())["pieces"] == ["next%d" % i]
    conn.close()


# -- chunked request bodies on a raw socket ----------------------------------


def chunked_post(srv, body_chunks, timeout=60.0):
    """POST the iterable of byte strings as a chunked body on a raw socket;
    (Parsed response, sha256 hex, length) of what was sent."""
    h = hashlib.sha256()
    n = 0
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    try:
        s.sendall(b"POST /input HTTP/1.1\r\nHost: localhost\r\n"
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n"
                  b"Content-Type: application/octet-stream\r\n\r\n")
        for piece in body_chunks:
            h.update(piece)
            n += len(piece)
            s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        data, eof = read_all(s, timeout)
    finally:
        s.close()
    assert eof, data[:300]
    return Parsed(data), h.hexdigest(), n


def chunked_input_server(nginx):
    return nginx(server="client_max_body_size 0;\n"
                        "location / { wsgi_pass {apps}/feat_app.py; }\n")


@pytest.mark.parametrize("pieces", [[], [b"x"], [b"a", b"bc", b"\x00" * 5]],
                         ids=["0", "1", "8"])
def test_chunked_request_body_small(nginx, pieces):
    srv = chunked_input_server(nginx)
    p, sha, n = chunked_post(srv, pieces)
    assert p.code == 200, f"{p!r}\n{srv.logs_tail()}"
    j = json.loads(p.body)
    assert j["len"] == n and j["sha256"] == sha, j
    assert j["content_length"] == str(n), j


def test_chunked_request_body_100mib(nginx):
    srv = chunked_input_server(nginx)
    base = body_bytes(21, 1 << 20)

    def pieces():
        for i in range(100):
            yield b"%08d" % i + base[8:]

    t0 = time.monotonic()
    p, sha, n = chunked_post(srv, pieces())
    took = time.monotonic() - t0
    assert n == 100 << 20
    assert p.code == 200, f"{p!r}\n{srv.logs_tail()}"
    j = json.loads(p.body)
    assert j["len"] == n, j
    assert j["sha256"] == sha, j
    assert j["content_length"] == str(n), j
    assert took < 60, f"100 MiB took {took:.1f}s"
