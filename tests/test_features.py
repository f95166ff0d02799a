"""wsgi.file_wrapper as nginx file buffers, ranges, conditional GET,
wsgi_optimize_send_headers, output and write() buffering, and chunked
request bodies.

Apps: tests/apps/feat_file.py (wsgi.file_wrapper; `application` is bare so
that the module sees its own file_wrapper object, `validated` goes through
wsgiref.validate and so through the block-wise fallback) and
tests/apps/feat_app.py (dispatched on the last path segment; behind
wsgiref.validate, or bare as "feat_app.py bare" where the module must see
the application's own list).

Every test works in both runs of the suite (thread pool and
TEST_NGINX_GLOBALS_HTTP="wsgi_thread_pool off;"); where the two differ on
purpose, harness.inline_mode() tells which one runs.
"""

import gzip
import hashlib
import json
import os
import random
import re
import shutil
import socket
import time

import pytest

from harness import (Parsed, assert_emerg_at, exchange, inline_mode,
                     read_all, req, url, wait_for)


KEEPALIVE = "keepalive_timeout 30s;"


# -- helpers -----------------------------------------------------------------


def read_side(path):
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def body_bytes(seed, size):
    """Same as feat_app.body_bytes()."""
    return random.Random(seed).randbytes(size)


def chunk_bytes(i, size):
    """Same as feat_app.chunk_bytes()."""
    head = b"%06d|" % i
    return head + bytes([65 + i % 26]) * (size - len(head))


def get(srv, path, extra="", method="GET", timeout=20.0):
    """One request with Connection: close, parsed; must end with EOF."""
    data, eof = exchange(srv, req(path, method=method, extra=extra),
                         timeout=timeout)
    assert eof, f"no EOF after {timeout}s: {data[:300]!r}"
    p = Parsed(data, head=(method == "HEAD"))
    assert p.rest == b"", p
    return p


def worker_temp_files(srv, temp):
    """Files under temp that a worker has open (readlink of /proc/PID/fd)."""
    out = []
    for pid in srv.worker_pids():
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith(str(temp) + "/"):
                out.append(target)
    return out


def hdrs(**h):
    """Request header lines: hdrs(If_None_Match='"x"')."""
    return "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in h.items())


# -- 1. wsgi.file_wrapper ----------------------------------------------------


def file_server(nginx, callable_="application", extra="", http=""):
    return nginx(http=http, server=(
        KEEPALIVE + "\n"
        f"location / {{ wsgi_pass {{apps}}/feat_file.py {callable_}; "
        f"{extra} }}\n"))


def data_file(srv, size=300_000, seed=3, data=None):
    if data is None:
        data = body_bytes(seed, size)
    path = srv.prefix / "data.bin"
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("mode", ["seek", "read"])
@pytest.mark.parametrize("callable_", ["application", "validated"])
def test_file_wrapper_starts_at_file_position(nginx, mode, callable_):
    srv = file_server(nginx, callable_)
    path, data = data_file(srv)
    side = srv.prefix / "side.txt"
    p = get(srv, url("/file", path=path, mode=mode, offset=100, side=side))
    assert p.code == 200, p
    assert len(p.body) == len(data) - 100, p
    assert p.body == data[100:], "file_wrapper did not start at offset 100"
    if callable_ == "application":
        # nginx sends the file: its length is known and announced
        assert p.framing == "length", p
        assert p.all("Content-Length") == [str(len(data) - 100)], p
    else:
        # behind the validator: read block by block, length unknown
        assert p.framing == "chunked", p
    # the wrapper's close() closed the file-like, once
    assert wait_for(lambda: read_side(side)), "file-like not closed"
    time.sleep(0.1)
    assert read_side(side) == ["closed seek/read"], read_side(side)


@pytest.mark.parametrize("callable_", ["application", "validated"])
def test_file_wrapper_app_content_length_smaller_than_file(nginx, callable_):
    srv = file_server(nginx, callable_)
    path, data = data_file(srv)
    data_, eof = exchange(srv, req(url("/file", path=path, mode="seek",
                                       offset=100, cl=1000), close=False)
                          + req("/second"))
    assert eof, data_[:300]
    first = Parsed(data_)
    assert first.code == 200, first
    assert first.all("Content-Length") == ["1000"], first
    assert first.body == data[100:1100], first
    assert first.rest.startswith(b"HTTP/1.1 "), \
        f"bytes past the Content-Length sent or no second answer: {first!r}"
    second = Parsed(first.rest)
    assert second.code == 200, second
    assert second.body == b"second" and second.rest == b"", second


@pytest.mark.parametrize("callable_", ["application", "validated"])
def test_file_wrapper_app_content_length_larger_than_file(nginx, callable_):
    srv = file_server(nginx, callable_)
    path, data = data_file(srv)
    left = len(data) - 100
    t0 = time.monotonic()
    data_, eof = exchange(srv, req(url("/file", path=path, mode="seek",
                                       offset=100, cl=left + 500),
                                   close=False), timeout=10)
    assert eof, f"connection left open after a short body: {data_[:300]!r}"
    assert time.monotonic() - t0 < 5
    p = Parsed(data_)
    assert p.code == 200, p
    assert p.all("Content-Length") == [str(left + 500)], p
    assert not p.complete, p
    assert p.body == data[100:], "the short body is not the file's rest"
    assert srv.wait_log(r"\[error\] .*produced %d bytes of its "
                        r"Content-Length of %d, closing the connection"
                        % (left, left + 500)), srv.logs_tail()


@pytest.mark.parametrize("extra", [
    "sendfile on;",
    "sendfile off; output_buffers 1 4k;",
    "aio threads; sendfile off; output_buffers 2 32k;",
    "aio threads; sendfile on;",
], ids=["sendfile", "output_buffers_4k", "aio_threads", "aio_sendfile"])
def test_file_wrapper_big_file(nginx, extra):
    srv = file_server(nginx, extra=extra)
    size = 3 * 1024 * 1024
    path, data = data_file(srv, size=size, seed=5)
    offset = 12345
    p = get(srv, url("/file", path=path, mode="seek", offset=offset))
    assert p.code == 200, p
    assert p.all("Content-Length") == [str(size - offset)], p
    assert len(p.body) == size - offset
    assert hashlib.sha256(p.body).digest() == \
        hashlib.sha256(data[offset:]).digest(), "body corrupted"


@pytest.mark.parametrize("callable_", ["application", "validated"])
def test_file_wrapper_gzip_filter_applies(nginx, callable_):
    srv = file_server(nginx, callable_, extra=(
        "gzip on; gzip_types application/octet-stream; "
        "gzip_min_length 1;"))
    text = b"".join(b"line %06d of a compressible file\n" % i
                    for i in range(20000))
    path, data = data_file(srv, data=text)
    p = get(srv, url("/file", path=path, mode="seek", offset=100),
            extra=hdrs(Accept_Encoding="gzip"))
    assert p.code == 200, p
    assert p.all("Content-Encoding") == ["gzip"], p
    assert len(p.body) < len(data) // 4, len(p.body)
    assert gzip.decompress(p.body) == data[100:]
    # without Accept-Encoding the file itself
    plain = get(srv, url("/file", path=path, mode="seek", offset=100))
    assert plain.all("Content-Encoding") == [], plain
    assert plain.body == data[100:]


@pytest.mark.parametrize("blksize", [None, 1000])
@pytest.mark.parametrize("mode", ["bytesio", "readonly"])
def test_file_wrapper_non_file_falls_back_to_block_reads(nginx, mode,
                                                         blksize):
    # the bare callable: the module sees its own file_wrapper, but over
    # something without a file descriptor
    srv = file_server(nginx)
    path, data = data_file(srv, size=100_000)
    side = srv.prefix / "side.txt"
    params = dict(path=path, mode=mode, offset=100, side=side)
    if blksize:
        params["blksize"] = blksize
    p = get(srv, url("/file", **params))
    assert p.code == 200, p
    assert p.framing == "chunked", p
    assert p.all("Content-Length") == [], p
    assert p.complete and p.body == data[100:], p
    assert wait_for(lambda: read_side(side)), "file-like not closed"
    time.sleep(0.1)
    assert read_side(side) == ["closed " + mode], read_side(side)


@pytest.mark.parametrize("callable_", ["application", "validated"])
def test_file_wrapper_head(nginx, callable_):
    srv = file_server(nginx, callable_)
    path, data = data_file(srv)
    side = srv.prefix / "side.txt"
    data_, eof = exchange(srv, req(url("/file", path=path, mode="seek",
                                       offset=100, side=side),
                                   method="HEAD", close=False)
                          + req("/second"))
    p = Parsed(data_, head=True)
    assert p.code == 200, p
    if callable_ == "application":
        assert p.all("Content-Length") == [str(len(data) - 100)], p
    assert p.rest.startswith(b"HTTP/1.1 200"), f"HEAD sent a body: {p!r}"
    second = Parsed(p.rest)
    assert second.body == b"second" and second.rest == b"", second
    assert wait_for(lambda: read_side(side)) == ["closed seek/read"], \
        read_side(side)


# -- 2. wsgi_allow_ranges ----------------------------------------------------


LIST_SIZE = 10_000          # spooled in memory for several ranges
GEN_SIZE = 200 * 1024       # 200 x 1 KiB, several steps; spooled to a file
FILE_SIZE = 300_000         # spooled to a file for several ranges


def range_server(nginx):
    return nginx(server=(
        KEEPALIVE + "\n"
        "location /r/ { wsgi_pass {apps}/feat_app.py; "
        "wsgi_allow_ranges on; }\n"
        "location /f/ { wsgi_pass {apps}/feat_file.py; "
        "wsgi_allow_ranges on; }\n"
        "location /off/ { wsgi_pass {apps}/feat_app.py; }\n"
        "location /foff/ { wsgi_pass {apps}/feat_file.py; }\n"))


def range_target(srv, kind, **extra):
    """(url, expected body) of a response of the kind."""
    if kind == "file":
        path, data = data_file(srv, size=FILE_SIZE, seed=11)
        return url("/f/file", path=path, mode="seek", **extra), data
    if kind == "list":
        return (url("/r/list", size=LIST_SIZE, seed=12, cl=1, **extra),
                body_bytes(12, LIST_SIZE))
    if kind == "gen":
        return (url("/r/gen", size=GEN_SIZE, seed=13, cl=1, **extra),
                body_bytes(13, GEN_SIZE))
    assert kind == "gen_nocl"
    return (url("/r/gen", size=GEN_SIZE, seed=14, **extra),
            body_bytes(14, GEN_SIZE))


def parse_multipart(p):
    """[(content_range, data)] of a multipart/byteranges response."""
    ctype = p.header("Content-Type")
    m = re.match(r"multipart/byteranges; boundary=(\S+)$", ctype or "")
    assert m, p
    delim = b"\r\n--" + m.group(1).encode()
    pieces = p.body.split(delim)
    assert pieces[0] == b"", p
    assert pieces[-1] == b"--\r\n", pieces[-1][:100]
    parts = []
    for piece in pieces[1:-1]:
        head, sep, data = piece.partition(b"\r\n\r\n")
        assert sep and head.startswith(b"\r\n"), piece[:200]
        h = {}
        for line in head[2:].decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            h[k.strip().lower()] = v.strip()
        assert h.get("content-type") == "application/octet-stream", h
        parts.append((h["content-range"], data))
    return parts


KNOWN_LENGTH = ["file", "list", "gen"]


@pytest.mark.parametrize("kind", KNOWN_LENGTH)
@pytest.mark.parametrize("spec, sl", [
    ("bytes=100-199", slice(100, 200)),
    ("bytes=-10", slice(-10, None)),
    ("bytes=10-", slice(10, None)),
], ids=["single", "suffix", "open"])
def test_single_range(nginx, kind, spec, sl):
    srv = range_server(nginx)
    path, data = range_target(srv, kind)
    p = get(srv, path, extra=hdrs(Range=spec))
    assert p.code == 206, p
    start, stop, _ = sl.indices(len(data))
    assert p.all("Content-Range") == \
        [f"bytes {start}-{stop - 1}/{len(data)}"], p
    assert p.all("Content-Length") == [str(stop - start)], p
    assert p.body == data[sl], p


@pytest.mark.parametrize("kind", KNOWN_LENGTH + ["gen_nocl"])
def test_multiple_ranges_multipart(nginx, kind):
    srv = range_server(nginx)
    path, data = range_target(srv, kind)
    n = len(data)
    p = get(srv, path, extra=hdrs(Range="bytes=0-9,500-1599,-5"))
    assert p.code == 206, p
    parts = parse_multipart(p)
    assert parts == [
        (f"bytes 0-9/{n}", data[0:10]),
        (f"bytes 500-1599/{n}", data[500:1600]),
        (f"bytes {n - 5}-{n - 1}/{n}", data[n - 5:]),
    ], [(cr, len(d)) for cr, d in parts]
    assert not srv.wait_log(r"\[error\]", timeout=0.2), srv.logs_tail()


@pytest.mark.parametrize("kind", ["file", "list"])
def test_multiple_ranges_of_a_body_shorter_than_its_length(nginx, kind):
    # the spooled body is 500 bytes short of its Content-Length: no range
    # may be cut out of bytes that do not exist
    srv = range_server(nginx)
    if kind == "file":
        path, data = data_file(srv, size=FILE_SIZE, seed=11)
        target = url("/f/file", path=path, mode="seek", cl=FILE_SIZE + 500)
    else:
        target = url("/r/list", size=LIST_SIZE, seed=12, cl=1, cl_extra=500)
        data = body_bytes(12, LIST_SIZE)
    n = len(data)
    data_, eof = exchange(srv, req(target, extra=hdrs(
        Range=f"bytes=0-9,{n}-{n + 99}")))
    assert eof, data_[:300]
    p = Parsed(data_)
    assert p.code == 500, p
    assert data[:10] not in p.body, p
    assert srv.wait_log(r"\[error\] .*produced %d bytes of its "
                        r"Content-Length of %d" % (n, n + 500)), \
        srv.logs_tail()


@pytest.mark.parametrize("kind", KNOWN_LENGTH)
@pytest.mark.parametrize("spec", [
    "bytes=99999999-",
    "bytes=99999999-,99999990-99999999",
], ids=["single", "multiple"])
def test_unsatisfiable_range_416(nginx, kind, spec):
    srv = range_server(nginx)
    path, data = range_target(srv, kind)
    p = get(srv, path, extra=hdrs(Range=spec))
    assert p.code == 416, p
    assert p.all("Content-Range") == [f"bytes */{len(data)}"], p
    assert data[:100] not in p.body


def test_generator_without_length_single_range_is_200(nginx):
    srv = range_server(nginx)
    path, data = range_target(srv, "gen_nocl")
    p = get(srv, path, extra=hdrs(Range="bytes=100-199"))
    assert p.code == 200, p
    assert p.all("Content-Range") == [], p
    assert p.body == data, "not the full body"


@pytest.mark.parametrize("kind", ["file", "list"])
def test_allow_ranges_off_is_default(nginx, kind):
    srv = range_server(nginx)
    path, data = range_target(srv, kind)
    off = path.replace("/f/", "/foff/", 1).replace("/r/", "/off/", 1)
    p = get(srv, off, extra=hdrs(Range="bytes=100-199"))
    assert p.code == 200, p
    assert p.all("Accept-Ranges") == [] and p.all("Content-Range") == [], p
    assert p.body == data
    # ... where "on" announces them
    p = get(srv, path)
    assert p.code == 200, p
    assert p.all("Accept-Ranges") == ["bytes"], p
    assert p.body == data


@pytest.mark.parametrize("kind", ["file", "list"])
def test_if_range(nginx, kind):
    srv = range_server(nginx)
    path, data = range_target(srv, kind, etag='"v1"')
    p = get(srv, path, extra=hdrs(Range="bytes=100-199", If_Range='"v1"'))
    assert p.code == 206, p
    assert p.body == data[100:200]
    p = get(srv, path, extra=hdrs(Range="bytes=100-199", If_Range='"v2"'))
    assert p.code == 200, p
    assert p.all("Content-Range") == [], p
    assert p.body == data


# -- 3. conditional GET ------------------------------------------------------


LM = "Wed, 21 Oct 2015 07:28:00 GMT"
EARLIER = "Tue, 20 Oct 2015 07:28:00 GMT"
LATER = "Thu, 22 Oct 2015 07:28:00 GMT"
ETAG = '"abc123"'
COND_BODY = b"conditional body"


def cond_server(nginx):
    app = "wsgi_pass {apps}/feat_app.py;"
    return nginx(server=(
        KEEPALIVE + "\n"
        f"location / {{ {app} }}\n"
        f"location /before/ {{ {app} if_modified_since before; }}\n"
        f"location /noval/ {{ {app} wsgi_cache_validation off; }}\n"))


def cond_url(prefix="/", **extra):
    return url(prefix + "cond", etag=ETAG, lm=LM, **extra)


def assert_304(srv, path, extra):
    # the 304 carries no body: a pipelined request's answer follows it
    data, eof = exchange(srv, req(path, close=False, extra=extra)
                         + req("/second"))
    p = Parsed(data)
    assert p.code == 304, p
    assert p.all("Transfer-Encoding") == [] and \
        p.all("Content-Length") == [], p
    assert p.all("ETag") == [ETAG], p
    assert p.rest.startswith(b"HTTP/1.1 200"), f"304 with a body: {p!r}"
    second = Parsed(p.rest)
    assert second.body == b"second" and second.rest == b"", second
    return p


def assert_200(p):
    assert p.code == 200, p
    assert p.body == COND_BODY, p


@pytest.mark.parametrize("inm", [ETAG, '"other", ' + ETAG, "*"],
                         ids=["same", "list", "star"])
def test_if_none_match_304(nginx, inm):
    srv = cond_server(nginx)
    assert_304(srv, cond_url(), hdrs(If_None_Match=inm))


def test_if_none_match_other_etag_200(nginx):
    srv = cond_server(nginx)
    assert_200(get(srv, cond_url(), extra=hdrs(If_None_Match='"other"')))


def test_if_modified_since(nginx):
    srv = cond_server(nginx)
    assert_304(srv, cond_url(), hdrs(If_Modified_Since=LM))
    assert_200(get(srv, cond_url(), extra=hdrs(If_Modified_Since=EARLIER)))
    # nginx's default "if_modified_since exact" wants the same time ...
    assert_200(get(srv, cond_url(), extra=hdrs(If_Modified_Since=LATER)))
    # ... "before" takes a later one too
    assert_304(srv, cond_url("/before/"), hdrs(If_Modified_Since=LATER))
    assert_304(srv, cond_url("/before/"), hdrs(If_Modified_Since=LM))
    assert_200(get(srv, cond_url("/before/"),
                   extra=hdrs(If_Modified_Since=EARLIER)))


def test_if_unmodified_since(nginx):
    srv = cond_server(nginx)
    p = get(srv, cond_url(), extra=hdrs(If_Unmodified_Since=EARLIER))
    assert p.code == 412, p
    assert COND_BODY not in p.body
    assert_200(get(srv, cond_url(), extra=hdrs(If_Unmodified_Since=LM)))
    assert_200(get(srv, cond_url(), extra=hdrs(If_Unmodified_Since=LATER)))


def test_if_match(nginx):
    srv = cond_server(nginx)
    p = get(srv, cond_url(), extra=hdrs(If_Match='"other"'))
    assert p.code == 412, p
    assert COND_BODY not in p.body
    assert_200(get(srv, cond_url(), extra=hdrs(If_Match=ETAG)))


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "PATCH"])
@pytest.mark.parametrize("header", [
    hdrs(If_Match='"other"'),
    hdrs(If_Unmodified_Since=EARLIER),
    hdrs(If_None_Match=ETAG),
], ids=["im", "ius", "inm"])
def test_cache_validation_only_for_get_and_head(nginx, method, header):
    """A method that changes something has run when its response comes:
    its preconditions are the application's (a CalDAV client's DELETE
    with If-Match got a 412 for an event that was deleted)."""
    srv = cond_server(nginx)
    p = get(srv, cond_url(), method=method,
            extra=header + "Content-Length: 0\r\n")
    assert_200(p)
    assert p.all("ETag") == [ETAG], p


@pytest.mark.parametrize("header", [
    hdrs(If_None_Match=ETAG),
    hdrs(If_Modified_Since=LM),
    hdrs(If_Unmodified_Since=EARLIER),
    hdrs(If_Match='"other"'),
], ids=["inm", "ims", "ius", "im"])
def test_cache_validation_off(nginx, header):
    srv = cond_server(nginx)
    p = get(srv, cond_url("/noval/"), extra=header)
    assert_200(p)
    assert p.all("ETag") == [ETAG], p


def test_custom_reason_with_validators(nginx):
    srv = cond_server(nginx)
    path = cond_url(reason="Everything Fine")
    data, eof = exchange(srv, req(path))
    assert data.startswith(b"HTTP/1.1 200 Everything Fine\r\n"), data[:200]
    assert_200(Parsed(data))
    p = assert_304(srv, path, hdrs(If_None_Match=ETAG))
    assert p.status_line == "HTTP/1.1 304 Not Modified", p


# -- 4. wsgi_optimize_send_headers -------------------------------------------


def opt_server(nginx):
    app = "wsgi_pass {apps}/feat_app.py;"
    return nginx(server=(
        KEEPALIVE + "\n"
        f"location /on/ {{ {app} wsgi_optimize_send_headers on; }}\n"
        f"location /off/ {{ {app} }}\n"))


def opt_run(srv, path, extra="", method="GET", head=False):
    """Request path with a fresh side file; (Parsed, side lines once
    close() was called)."""
    side = srv.prefix / f"side{time.monotonic_ns()}.txt"
    data, eof = exchange(srv, req(url(path, side=side, etag=ETAG),
                                  method=method, close=False, extra=extra)
                         + req("/off/second"))
    p = Parsed(data, head=head)
    assert p.rest.startswith(b"HTTP/1.1 200"), f"unexpected body: {p!r}"
    assert Parsed(p.rest).body == b"second"
    assert wait_for(lambda: "closed" in read_side(side)), \
        f"close() not called: {read_side(side)}\n{srv.logs_tail()}"
    time.sleep(0.1)
    return p, read_side(side)


def test_optimize_head_stops_the_generator(nginx):
    srv = opt_server(nginx)
    p, lines = opt_run(srv, "/on/opt", method="HEAD", head=True)
    assert p.code == 200, p
    assert lines == ["closed"], f"generator ran past the empty item: {lines}"


def test_no_optimize_head_runs_the_generator(nginx):
    srv = opt_server(nginx)
    p, lines = opt_run(srv, "/off/opt", method="HEAD", head=True)
    assert p.code == 200, p
    assert lines == ["ran", "closed"], lines


def test_optimize_get_has_the_body(nginx):
    srv = opt_server(nginx)
    p, lines = opt_run(srv, "/on/opt")
    assert p.code == 200, p
    assert p.body == b"body after the empty item", p
    assert lines == ["ran", "closed"], lines


@pytest.mark.parametrize("where, ran", [("/on/", False), ("/off/", True)])
def test_optimize_304(nginx, where, ran):
    srv = opt_server(nginx)
    p, lines = opt_run(srv, where + "opt", extra=hdrs(If_None_Match=ETAG))
    assert p.code == 304, p
    assert lines == (["ran", "closed"] if ran else ["closed"]), lines


# -- 5. wsgi_output_buffering ------------------------------------------------


def arrivals(srv, path, timeout=20.0):
    """GET path; ([(seconds since the request, bytes)] per recv, raw)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    got = []
    try:
        t0 = time.monotonic()
        s.sendall(req(path))
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = s.recv(1 << 20)
            except socket.timeout:
                break
            if not d:
                break
            got.append((time.monotonic() - t0, d))
    finally:
        s.close()
    return got, b"".join(d for _, d in got)


def body_timeline(got):
    """[(seconds, raw body bytes)] per recv, header bytes left out."""
    raw = b"".join(d for _, d in got)
    head_end = raw.index(b"\r\n\r\n") + 4
    out, pos = [], 0
    for t, d in got:
        body = max(0, pos + len(d) - max(pos, head_end))
        pos += len(d)
        if body:
            out.append((t, body))
    return out


def bursts(timeline, gap=0.008):
    """Sizes of groups of arrivals separated by more than gap seconds."""
    sizes, last = [], None
    for t, n in timeline:
        if last is None or t - last > gap:
            sizes.append(0)
        sizes[-1] += n
        last = t
    return sizes


OUTBUF_N, OUTBUF_SIZE = 64, 1024


def outbuf_server(nginx):
    app = "wsgi_pass {apps}/feat_app.py;"
    return nginx(server=(
        f"location /buf/ {{ {app} wsgi_output_buffering on; "
        "wsgi_buffer_size 16k; }\n"
        f"location /nobuf/ {{ {app} wsgi_buffer_size 16k; }}\n"))


def outbuf_fetch(srv, where):
    got, raw = arrivals(srv, url(where + "outbuf", n=OUTBUF_N,
                                 size=OUTBUF_SIZE, delay=0.02))
    p = Parsed(raw)
    assert p.code == 200 and p.complete, p
    assert p.body == b"".join(chunk_bytes(i, OUTBUF_SIZE)
                              for i in range(OUTBUF_N)), "body corrupted"
    return body_timeline(got)


def test_output_buffering_sends_full_buffers(nginx):
    srv = outbuf_server(nginx)
    timeline = outbuf_fetch(srv, "/buf/")
    sizes = bursts(timeline)
    first_at = timeline[0][0]
    # 16 pieces (15 sleeps of 20 ms) fill the first 16 KiB buffer
    assert first_at >= 0.2, \
        f"first body bytes after {first_at:.3f}s: not buffered"
    # ~4 buffers of 16 KiB (+ chunk framing), not 64 pieces
    assert len(sizes) <= 10, f"{len(sizes)} bursts: {sizes}"
    assert sizes[0] >= 15 * 1024, sizes


def test_output_buffering_off_streams_each_piece(nginx):
    srv = outbuf_server(nginx)
    timeline = outbuf_fetch(srv, "/nobuf/")
    sizes = bursts(timeline)
    first_at = timeline[0][0]
    assert first_at < 0.15, f"first piece only after {first_at:.3f}s"
    assert len(sizes) >= 20, f"only {len(sizes)} bursts: {sizes}"


# -- 6. wsgi_write_buffering -------------------------------------------------


WRITES_BODY = b"".join(chunk_bytes(i, 1000) for i in range(100))


def wb_server(nginx, extra_server=""):
    return nginx(server=(
        KEEPALIVE + "\n" + extra_server +
        "location /wb/ { wsgi_pass {apps}/feat_app.py bare; "
        "wsgi_write_buffering on; }\n"
        "location /wbv/ { wsgi_pass {apps}/feat_app.py; "
        "wsgi_write_buffering on; }\n"
        "location /nowb/ { wsgi_pass {apps}/feat_app.py; }\n"))


def test_write_buffering_adds_content_length(nginx):
    srv = wb_server(nginx)
    p = get(srv, url("/wb/writes", ret="list"))
    assert p.code == 200, p
    assert p.all("Content-Length") == ["100003"], p
    assert p.all("Transfer-Encoding") == [], p
    assert p.body == WRITES_BODY + b"end"
    assert temp_files_left(srv) == []


def writes_body(n):
    return b"".join(chunk_bytes(i, 1000) for i in range(n))


# The write() data is held back in memory up to wsgi_write_buffer_size (a
# page), then in a temp file; n=50 is less than a step's output bound
# (wsgi_buffer_size, 64k), n=100 more.


@pytest.mark.parametrize("n", [50, 100])
def test_write_buffering_through_validator(nginx, n):
    # the validator's iterator hides the list: the length is unknown, the
    # body must still be right
    srv = wb_server(nginx)
    p = get(srv, url("/wbv/writes", ret="list", n=n))
    assert p.code == 200 and p.complete, p
    left = temp_files_left(srv)
    assert len(p.body) == n * 1000 + 3, \
        f"{len(p.body)} body bytes; temp files still open: {left}"
    assert p.body == writes_body(n) + b"end"
    assert left == [], f"temp files still open: {left}"


@pytest.mark.parametrize("n", [50, 100])
@pytest.mark.parametrize("where", ["/wb/", "/wbv/"])
def test_write_buffering_generator_is_chunked(nginx, where, n):
    srv = wb_server(nginx)
    p = get(srv, url(where + "writes", ret="gen", n=n))
    assert p.code == 200, p
    assert p.framing == "chunked" and p.complete, p
    assert p.all("Content-Length") == [], p
    left = temp_files_left(srv)
    assert len(p.body) == n * 1000 + 4, \
        f"{len(p.body)} body bytes; temp files still open: {left}"
    assert p.body == writes_body(n) + b"g1g2"
    assert left == [], f"temp files still open: {left}"


def temp_files_left(srv):
    """Temp files in wsgi_temp_path (the default, wsgi_temp in the prefix)
    that the worker still holds open shortly after the response."""
    temp = srv.prefix / "wsgi_temp"
    wait_for(lambda: worker_temp_files(srv, temp) == [], 1)
    return worker_temp_files(srv, temp)


def test_write_buffering_headers_replaceable_after_write(nginx):
    srv = wb_server(nginx)
    p = get(srv, "/wbv/write_replace")
    assert p.code == 500, p
    assert p.all("X-Replaced") == ["yes"], p
    assert p.all("X-First") == [], p
    # what write() held back was not the answer: the error page is
    assert p.complete and p.body == b"error page", p


def first_arrival(srv, path, needle, timeout=10.0):
    """Seconds until needle arrived, and the whole raw response."""
    got, raw = arrivals(srv, path, timeout)
    acc = b""
    for t, d in got:
        acc += d
        if needle in acc:
            return t, raw
    raise AssertionError(f"{needle!r} never arrived: {raw[:300]!r}")


def test_write_buffering_off_sends_write_data_at_once(nginx):
    srv = wb_server(nginx)
    t, raw = first_arrival(srv, url("/nowb/write_sleep", sleep=1), b"first;")
    p = Parsed(raw)
    assert p.code == 200 and p.body == b"first;last", p
    if inline_mode():
        # on the event loop, the step's output goes when the step is done
        assert t >= 0.9, f"write() data after {t:.2f}s"
    else:
        assert t < 0.7, f"write() data only after {t:.2f}s"


def test_write_buffering_on_holds_write_data_back(nginx):
    srv = wb_server(nginx)
    t, raw = first_arrival(srv, url("/wb/write_sleep", sleep=1), b"first;")
    assert t >= 0.9, f"write() data after {t:.2f}s, before the app returned"
    p = Parsed(raw)
    assert p.code == 200 and p.body == b"first;last", p
    assert p.all("Content-Length") == ["10"], p


SPOOL_N, SPOOL_SIZE = 256, 4096     # 1 MiB of write()s
SPOOL_BODY = b"".join(chunk_bytes(i, SPOOL_SIZE) for i in range(SPOOL_N))
SPOOL_ERR = r"\[error\] .*wsgi: cannot create a temp file in \"%s\""


def spool_server(nginx, temp):
    return nginx(server=(
        "location / { wsgi_pass {apps}/feat_app.py bare; "
        "wsgi_write_buffering on; wsgi_write_buffer_size 4k; "
        f"wsgi_temp_path {temp}; }}\n"))


def test_write_buffer_spills_to_temp_file(nginx, tmp_path):
    temp = tmp_path / "wtemp"
    srv = spool_server(nginx, temp)
    assert temp.is_dir(), "nginx did not create wsgi_temp_path"
    marker, go = tmp_path / "marker", tmp_path / "go"
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        s.sendall(req(url("/write_spool", n=SPOOL_N, size=SPOOL_SIZE,
                          marker=marker, go=go)))
        assert wait_for(marker.exists), srv.logs_tail()
        # the app waits for "go": its write()s are in an unlinked file
        files = worker_temp_files(srv, temp)
        go.write_text("go")
        data, eof = read_all(s, 10)
    finally:
        s.close()
    assert eof
    assert len(files) == 1 and files[0].endswith(" (deleted)") \
        and "/wsgi." in files[0], files
    p = Parsed(data)
    assert p.code == 200, p
    assert p.all("Content-Length") == [str(len(SPOOL_BODY) + 3)], p
    assert p.body == SPOOL_BODY + b"end", "body corrupted"
    assert not re.search(SPOOL_ERR % re.escape(str(temp)), srv.error_log())
    assert wait_for(lambda: worker_temp_files(srv, temp) == []), \
        worker_temp_files(srv, temp)


def test_write_buffer_temp_file_failure_keeps_data(nginx, tmp_path):
    temp = tmp_path / "wtemp"
    srv = spool_server(nginx, temp)
    # nginx created the directory at start; a regular file in its place
    # makes every temp file fail (chmod would not stop root)
    shutil.rmtree(temp)
    temp.write_text("not a directory")
    p = get(srv, url("/write_spool", n=SPOOL_N, size=SPOOL_SIZE))
    assert p.code == 200, p
    assert p.all("Content-Length") == [str(len(SPOOL_BODY) + 3)], p
    assert p.body == SPOOL_BODY + b"end", "body lost or corrupted"
    assert srv.wait_log(SPOOL_ERR % re.escape(str(temp))), srv.logs_tail()


# -- 7. configuration --------------------------------------------------------


NEW_DIRECTIVES = [
    "wsgi_allow_ranges on;",
    "wsgi_cache_validation off;",
    "wsgi_optimize_send_headers on;",
    "wsgi_output_buffering on;",
    "wsgi_write_buffering on;",
    "wsgi_write_buffer_size 8k;",
    "wsgi_temp_path {prefix}/wt;",
    "wsgi_temp_path {prefix}/wt 1 2;",
]


@pytest.mark.parametrize("level", ["http", "server", "location"])
@pytest.mark.parametrize("directive", NEW_DIRECTIVES)
def test_new_directive_accepted(nginx_t, directive, level):
    loc = "location / { wsgi_pass {apps}/feat_app.py; %s }"
    kw = {"http": {"http": directive, "server": loc % ""},
          "server": {"server": directive + "\n" + loc % ""},
          "location": {"server": loc % directive}}[level]
    rc, out, conf = nginx_t(**kw)
    assert rc == 0, out


def test_new_directives_inherited(nginx):
    app = "wsgi_pass {apps}/feat_app.py bare;"
    srv = nginx(http="wsgi_allow_ranges on; wsgi_write_buffering on;",
                server=("wsgi_cache_validation off;\n"
                        f"location / {{ {app} }}\n"
                        f"location /x/ {{ {app} wsgi_allow_ranges off; "
                        "wsgi_cache_validation on; }\n"))
    data = body_bytes(12, LIST_SIZE)
    path = url("/list", size=LIST_SIZE, seed=12, cl=1, etag=ETAG)
    p = get(srv, path, extra=hdrs(Range="bytes=0-9"))
    assert (p.code, p.body) == (206, data[:10]), p
    p = get(srv, path, extra=hdrs(If_None_Match=ETAG))
    assert (p.code, p.body) == (200, data), p
    p = get(srv, url("/writes", ret="list"))
    assert p.all("Content-Length") == ["100003"], p
    # overridden in the location
    p = get(srv, "/x" + path, extra=hdrs(Range="bytes=0-9"))
    assert (p.code, p.body) == (200, data), p
    p = get(srv, "/x" + path, extra=hdrs(If_None_Match=ETAG))
    assert p.code == 304, p


@pytest.mark.parametrize("directive, msg", [
    ("wsgi_write_buffer_size 0;",
     r'"wsgi_write_buffer_size" directive must be positive'),
    ("wsgi_allow_ranges maybe;",
     r'invalid value "maybe" in "wsgi_allow_ranges" directive'),
    ("wsgi_write_buffer_size lots;",
     r'"wsgi_write_buffer_size" directive invalid value'),
    ("wsgi_temp_path /tmp/wt 1 2 3 4;",
     r'invalid number of arguments in "wsgi_temp_path" directive'),
])
def test_new_directive_invalid(nginx_t, directive, msg):
    rc, out, conf = nginx_t(server="location / {\n"
                                   " wsgi_pass {apps}/feat_app.py;\n"
                                   f" {directive}\n }}")
    assert_emerg_at(rc, out, conf, directive.split()[0], msg)


def test_temp_path_that_cannot_be_created(nginx_t, tmp_path):
    # nginx creates wsgi_temp_path at start; a missing parent is an error
    missing = tmp_path / "no" / "such" / "dir"
    rc, out, conf = nginx_t(server="location / {\n"
                                   " wsgi_pass {apps}/feat_app.py;\n"
                                   f" wsgi_temp_path {missing};\n }}")
    assert rc != 0, out
    assert re.search(r'\[emerg\] .*mkdir\(\) "%s" failed' % re.escape(
        str(missing)), out), out


def test_temp_path_with_levels_created_and_used(nginx, tmp_path):
    temp = tmp_path / "wtemp_levels"
    srv = nginx(server=(
        "location / { wsgi_pass {apps}/feat_app.py bare; "
        "wsgi_write_buffering on; wsgi_write_buffer_size 4k; "
        f"wsgi_temp_path {temp} 1 2; }}\n"))
    assert temp.is_dir(), "nginx did not create the wsgi_temp_path"
    p = get(srv, url("/write_spool", n=SPOOL_N, size=SPOOL_SIZE))
    assert p.code == 200, p
    assert p.body == SPOOL_BODY + b"end"
    assert "cannot create a temp file" not in srv.error_log(), \
        srv.logs_tail()


# -- 8. chunked request bodies -----------------------------------------------


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


def input_server(nginx):
    return nginx(server="client_max_body_size 0;\n"
                        "location / { wsgi_pass {apps}/feat_app.py; }\n")


@pytest.mark.parametrize("pieces", [[], [b"x"], [b"a", b"bc", b"\x00" * 5]],
                         ids=["0", "1", "8"])
def test_chunked_request_body_small(nginx, pieces):
    srv = input_server(nginx)
    p, sha, n = chunked_post(srv, pieces)
    assert p.code == 200, f"{p!r}\n{srv.logs_tail()}"
    j = json.loads(p.body)
    assert j["len"] == n and j["sha256"] == sha, j
    assert j["content_length"] == str(n), j


def test_chunked_request_body_100mib(nginx):
    srv = input_server(nginx)
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
