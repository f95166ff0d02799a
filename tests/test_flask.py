"""A Flask application (Debian's python3-flask) taking multipart uploads.

The multipart bodies are built by hand.  A small upload stays in nginx's
memory buffer; a ~3 MiB one is larger than client_body_buffer_size, so
nginx writes it to a temp file and wsgi.input reads it from there.
werkzeug's parser reads wsgi.input in pieces with read(n) and readline(),
and must see exactly the bytes that were sent.
"""

import hashlib
import json
import os

import pytest

from harness import Response
from harness.compat import multipart

BIG = 3 * 1024 * 1024 + 12345
NOTE = "h\u00e9llo \u2713 \"quoted\""


@pytest.fixture
def srv(nginx):
    return nginx(http="client_max_body_size 16m;",
                 server="location / { wsgi_pass {apps}/flask_upload.py; }")


def check_upload(r, body, filename, data):
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/json", r

    got = json.loads(r.body)
    assert got == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "filename": filename,
        "note": NOTE,
        "content_length": str(len(body)),
    }


def send(conn, body, headers, **kw):
    conn.request("POST", "/upload", body=body, headers=headers, **kw)
    r = conn.getresponse()
    return Response(r.status, r.reason, r.getheaders(), r.read(), r.version)


def upload(srv, filename, data, conn=None):
    body, ctype = multipart({"note": NOTE}, {"file": (filename, data)})
    headers = {"Content-Type": ctype}

    if conn is None:
        r = srv.post("/upload", body, headers=headers)
    else:
        r = send(conn, body, headers)

    return r, body


def test_flask_upload_small(srv):
    # CRLFs, a fake boundary and binary bytes inside the file content
    data = b"hello\r\n--not-the-boundary\r\n\x00\xff\r\n" * 10

    r, body = upload(srv, "small.bin", data)
    check_upload(r, body, "small.bin", data)

    assert "temporary file" not in srv.error_log()


def test_flask_upload_big(srv):
    data = os.urandom(BIG)

    r, body = upload(srv, "big.bin", data)
    check_upload(r, body, "big.bin", data)

    # nginx says so (at [warn]) when a body goes to a temp file
    assert "a client request body is buffered to a temporary file" \
        in srv.error_log()


def test_flask_upload_keepalive(srv):
    # small, big, small on one connection: the body of each request is
    # consumed exactly, nothing leaks into the next one
    small = b"small\r\n" * 100
    big = os.urandom(BIG)

    conn = srv.connection()
    try:
        for name, data in (("a.bin", small), ("b.bin", big),
                           ("c.bin", small)):
            r, body = upload(srv, name, data, conn=conn)
            check_upload(r, body, name, data)
    finally:
        conn.close()


def test_flask_upload_chunked(srv):
    data = os.urandom(BIG)
    body, ctype = multipart({"note": NOTE}, {"file": ("chunked.bin", data)})

    def pieces():
        for i in range(0, len(body), 100000):
            yield body[i:i + 100000]

    conn = srv.connection()
    try:
        r = send(conn, pieces(), {"Content-Type": ctype,
                                  "Transfer-Encoding": "chunked"},
                 encode_chunked=True)
    finally:
        conn.close()

    # CONTENT_LENGTH is the decoded length of the chunked body
    check_upload(r, body, "chunked.bin", data)
