"""wsgi.file_wrapper: a file sent as nginx file buffers, other file-likes
read block by block.

App: tests/apps/feat_file.py (`application` is bare so that the module sees
its own file_wrapper object, `validated` goes through wsgiref.validate and so
through the block-wise fallback).
"""

import gzip
import hashlib
import time

import pytest

from harness import (Parsed, data_file, exchange, get, hdrs, req,
                     side_lines, url, wait_for)


KEEPALIVE = "keepalive_timeout 30s;"


def file_server(nginx, callable_="application", extra="", http=""):
    return nginx(http=http, server=(
        KEEPALIVE + "\n"
        f"location / {{ wsgi_pass {{apps}}/feat_file.py {callable_}; "
        f"{extra} }}\n"))


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
    assert wait_for(lambda: side_lines(side)), "file-like not closed"
    time.sleep(0.1)
    assert side_lines(side) == ["closed seek/read"], side_lines(side)


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
    assert wait_for(lambda: side_lines(side)), "file-like not closed"
    time.sleep(0.1)
    assert side_lines(side) == ["closed " + mode], side_lines(side)


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
    assert wait_for(lambda: side_lines(side)) == ["closed seek/read"], \
        side_lines(side)
