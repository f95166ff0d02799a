"""wsgi_allow_ranges: byte ranges of an application's response.

Apps: tests/apps/feat_app.py (dispatched on the last path segment, behind
wsgiref.validate) and tests/apps/feat_file.py (wsgi.file_wrapper).
"""

import re

import pytest

from harness import (Parsed, body_bytes, data_file, exchange, get, hdrs,
                     req, url)


KEEPALIVE = "keepalive_timeout 30s;"


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
