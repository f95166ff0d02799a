"""Werkzeug (Debian's python3-werkzeug) under wsgi_pass, mounted at /app/.

tests/apps/compat_werkzeug.py routes with werkzeug.routing.Map, answers
with Request/Response, sends a file with send_file() and with wrap_file()
(which takes wsgi.file_wrapper from the environ) and streams a generator.
"""

import hashlib

import pytest

pytest.importorskip("werkzeug")

from harness import compat  # noqa: E402

STREAM_CHUNK = 64 * 1024
STREAM_CHUNKS = 40


@pytest.fixture
def srv(nginx):
    return compat.mount(nginx, "compat_werkzeug.py")


def test_werkzeug_routing(srv):
    compat.check_routing(srv, "werkzeug")


def test_werkzeug_form_json(srv):
    compat.check_form(srv)
    compat.check_json(srv)


def test_werkzeug_redirect_cookies(srv):
    compat.check_redirect(srv)
    compat.check_cookies(srv)


def test_werkzeug_errors(srv):
    compat.check_errors(srv)


def test_werkzeug_big(srv):
    compat.check_big(srv)


def test_werkzeug_upload(srv):
    compat.check_upload(srv)


def test_werkzeug_send_file(srv):
    compat.check_file(srv)


def test_werkzeug_wrap_file(srv):
    r = srv.get("/app/wrapped")
    compat.ok(srv, r)
    # wrap_file() used the server's wsgi.file_wrapper, not werkzeug's own
    assert r.header("X-Wrapper") == "ngx.FileWrapper", r.headers
    assert r.header("Content-Length") == str(len(srv.payload))
    assert hashlib.sha256(r.body).digest() == \
        hashlib.sha256(srv.payload).digest()


def test_werkzeug_stream(srv):
    conn = srv.connection()
    try:
        conn.request("GET", "/app/stream")
        resp = conn.getresponse()
        assert resp.status == 200
        # no length known up front: chunked
        assert resp.getheader("Transfer-Encoding") == "chunked"
        assert resp.getheader("Content-Length") is None
        data = resp.read()
    finally:
        conn.close()

    assert data == b"".join(bytes([i]) * STREAM_CHUNK
                            for i in range(STREAM_CHUNKS))
