"""wsgi_request_buffering off: wsgi.input streams the body as it arrives.

The wsgi.input tests of test_input.py run again in streaming mode; the
tests below check what only streaming does.
"""

import hashlib
import socket
import time
import types

import pytest

import test_input as base
from harness import Parsed, read_all, wait_for

STREAM = "wsgi_pass {apps}/stream_input_app.py; wsgi_request_buffering off;"


@pytest.fixture
def streaming(monkeypatch):
    monkeypatch.setattr(base, "INPUT",
                        base.INPUT + " wsgi_request_buffering off;")


def _clone(f):
    """A copy of the test function f, so that marking it leaves f (still
    collected in test_input.py) alone."""
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__,
                           f.__defaults__, f.__closure__)
    g.__dict__.update(f.__dict__)
    return g


# the access patterns of test_input.py, now on a streamed body
for _name in ("test_read_all", "test_read_size", "test_read_zero",
              "test_readline", "test_readline_size", "test_readlines",
              "test_readlines_hint", "test_iteration", "test_mixed_reads",
              "test_readline_empty_body", "test_binary_body_round_trip",
              "test_read_empty_body_get", "test_body_read_with_the_headers"):
    globals()[_name] = pytest.mark.usefixtures("streaming")(
        _clone(getattr(base, _name)))


def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"


def connect(srv, path, headers):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall((f"POST {path} HTTP/1.1\r\nHost: h\r\n{headers}"
               "Connection: close\r\n\r\n").encode())
    return s


def answer(s, timeout=30):
    try:
        data, eof = read_all(s, timeout)
    finally:
        s.close()
    assert eof, f"no EOF within {timeout}s: {data[:300]!r}"
    p = Parsed(data)
    assert p.complete and p.rest == b"", p
    return p.status_line, p.body.decode()


@pytest.mark.parametrize("size", [0, 1, 100 * 1024 * 1024])
def test_chunked_body_streamed(nginx, size):
    srv = nginx(http="client_max_body_size 0;",
                server=f"location / {{ {STREAM} }}")
    s = connect(srv, "/", "Transfer-Encoding: chunked\r\n")
    h = hashlib.sha256()
    block = hashlib.sha256(b"x").digest() * 32768          # 1 MiB
    sent = 0
    while sent < size:
        piece = block[:min(len(block), size - sent)]
        s.sendall(chunk(piece))
        h.update(piece)
        sent += len(piece)
    s.sendall(b"0\r\n\r\n")
    status, body = answer(s, timeout=60)
    assert " 200 " in status, body
    # no CONTENT_LENGTH for a streamed chunked body, the end is read()'s b""
    assert body == "None %d %s True\n" % (size, h.hexdigest())
    assert not srv.wait_log("a client request body is buffered to a "
                            "temporary file", timeout=0.1)


def test_content_length_body_streamed(nginx):
    srv = nginx(server=f"location / {{ {STREAM} }}")
    data = bytes(range(256)) * 4000
    r = srv.post("/", data)
    assert r.status == 200
    assert r.body.decode() == "%d %d %s True\n" % (
        len(data), len(data), hashlib.sha256(data).hexdigest())


def test_application_starts_before_the_body_is_complete(nginx, tmp_path):
    side = tmp_path / "side"
    srv = nginx(server=f"location / {{ {STREAM} }}")
    # read(n) returns n bytes or what is left at the end, so n=1000 returns
    # as soon as the first 1000 bytes are there
    s = connect(srv, f"/?side={side}&n=1000",
                "Transfer-Encoding: chunked\r\n")
    s.sendall(chunk(b"a" * 1000))
    # the application runs and has the first piece while the rest is not sent
    assert wait_for(lambda: side.exists() and "read 1000" in side.read_text(),
                    timeout=10), srv.logs_tail()
    s.sendall(chunk(b"b" * 500) + b"0\r\n\r\n")
    status, body = answer(s)
    assert " 200 " in status
    assert body.startswith("None 1500 ")


def test_buffered_by_default_runs_after_the_body(nginx, tmp_path):
    side = tmp_path / "side"
    srv = nginx(server="location / { wsgi_pass {apps}/stream_input_app.py; }")
    s = connect(srv, f"/?side={side}", "Transfer-Encoding: chunked\r\n")
    s.sendall(chunk(b"a" * 1000))
    time.sleep(0.5)
    assert not side.exists(), "the app ran before nginx had the whole body"
    s.sendall(b"0\r\n\r\n")
    status, body = answer(s)
    assert " 200 " in status
    assert body.startswith("1000 1000 ")


def test_client_gone_mid_body_raises_in_the_app(nginx, tmp_path):
    side = tmp_path / "side"
    srv = nginx(server=f"location / {{ {STREAM} }}")
    pids = srv.worker_pids()
    s = connect(srv, f"/?side={side}&n=1000",
                "Transfer-Encoding: chunked\r\n")
    s.sendall(chunk(b"a" * 1000))
    assert wait_for(lambda: side.exists() and "read 1000" in side.read_text())
    s.close()
    assert wait_for(lambda: "error OSError" in side.read_text()), \
        side.read_text() + srv.logs_tail()
    # the worker goes on
    r = srv.post("/", b"xyz")
    assert r.status == 200 and r.body.startswith(b"3 3 ")
    assert srv.worker_pids() == pids


def test_client_body_timeout_raises_in_the_app(nginx, tmp_path):
    side = tmp_path / "side"
    srv = nginx(server=f"location / {{ {STREAM} client_body_timeout 300ms; }}")
    s = connect(srv, f"/?side={side}", "Transfer-Encoding: chunked\r\n")
    s.sendall(chunk(b"a" * 10))
    assert wait_for(lambda: side.exists()
                    and "error OSError" in side.read_text(), timeout=5), \
        srv.logs_tail()
    s.close()
    r = srv.post("/", b"ok")
    assert r.status == 200
