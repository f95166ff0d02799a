"""Checks shared by the framework compatibility tests (test_compat_*.py).

Each framework has an application tests/apps/compat_<name>.py answering the
routes listed in tests/apps/compat_common.py; mount() serves it under
/app/ (so SCRIPT_NAME is /app) and the check_* functions drive it over
HTTP the way a browser or an API client would.
"""

import hashlib
import http.cookies
import json
import os
import random
import urllib.parse

PREFIX = "/app"

BIG_SIZE = 3 * 1024 * 1024 + 5


def big_body():
    """The body of GET /big, computed here on its own."""
    return random.Random(3333).randbytes(BIG_SIZE)


FILE_SIZE = 1024 * 1024 + 11


def mount(nginx, app, prefix=PREFIX, http="", location=""):
    """An nginx serving tests/apps/APP under PREFIX/, and PREFIX itself
    redirected there as docs/guide.md suggests.  The file GET /file serves
    is made in the server's prefix; srv.payload has its bytes."""
    payload = random.Random(12).randbytes(FILE_SIZE)
    path = nginx.next_prefix() / "payload.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)

    srv = nginx(
        http="wsgi_python_path {apps};\nclient_max_body_size 16m;\n" + http,
        server=f"""
            location = {prefix} {{
                return 301 {prefix}/;
            }}

            location {prefix}/ {{
                wsgi_pass {{apps}}/{app};
                wsgi_var COMPAT_FILE {path};
                {location}
            }}
        """)
    srv.payload = payload
    return srv


class Browser:
    """A cookie jar on top of srv.request(): cookies the server sets are
    sent back on the next requests (their Path is honoured)."""

    def __init__(self, srv):
        self.srv = srv
        self.cookies = {}               # name -> (value, path)

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        sent = [f"{k}={v}" for k, (v, p) in self.cookies.items()
                if path == p or path.startswith(p.rstrip("/") + "/")]
        if sent:
            headers["Cookie"] = "; ".join(sent)

        r = self.srv.request(method, path, body=body, headers=headers)

        for value in r.header_all("Set-Cookie"):
            jar = http.cookies.SimpleCookie()
            jar.load(value)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = (morsel.value,
                                          morsel["path"] or "/")
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)


def ok(srv, r, status=200):
    assert r.status == status, f"{r!r}\n{srv.logs_tail()}"


def check_routing(srv, name):
    r = srv.get(PREFIX + "/")
    ok(srv, r)
    assert r.text == f"index {name}"

    r = srv.get(PREFIX + "/hello/world")
    ok(srv, r)
    assert r.text == "Hello, world!"
    assert r.header("Content-Type").startswith("text/"), r

    # UTF-8 percent-encoded in the path, and a query string
    r = srv.get(PREFIX + "/hello/caf%C3%A9?greeting=Bonjour")
    ok(srv, r)
    assert r.text == "Bonjour, caf\u00e9!"


def check_form(srv):
    body = urllib.parse.urlencode(
        {"a": "1 + 1", "b": "h\u00e9llo & bye"}).encode()
    r = srv.post(PREFIX + "/form", body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    ok(srv, r)
    assert r.text == "a=1 + 1 b=h\u00e9llo & bye"


def check_json(srv):
    doc = {"n": [1, 2, 3], "s": "\u2713 caf\u00e9", "nested": {"x": None}}
    r = srv.post(PREFIX + "/json", json.dumps(doc).encode(),
                 headers={"Content-Type": "application/json"})
    ok(srv, r)
    assert r.header("Content-Type").startswith("application/json"), r
    assert r.json() == {"got": doc, "keys": 3}


def check_redirect(srv):
    r = srv.get(PREFIX + "/redirect")
    assert r.status in (302, 303), f"{r!r}\n{srv.logs_tail()}"
    loc = urllib.parse.urlsplit(r.header("Location"))
    # relative or absolute, the Location keeps the mount point
    assert loc.path == PREFIX + "/hello/there", r
    if loc.netloc:
        assert loc.netloc in (f"127.0.0.1:{srv.port}",
                              f"localhost:{srv.port}"), r

    r = srv.get(loc.path)
    ok(srv, r)
    assert r.text == "Hello, there!"

    # the mount point without its slash: nginx's redirect
    r = srv.get(PREFIX)
    assert r.status == 301, r
    assert urllib.parse.urlsplit(r.header("Location")).path == PREFIX + "/"


def check_cookies(srv):
    b = Browser(srv)

    r = b.get(PREFIX + "/cookie/get")
    ok(srv, r)
    assert r.text == "flavour=none"

    r = b.get(PREFIX + "/cookie/set")
    ok(srv, r)
    assert "flavour" in b.cookies, r.headers
    assert b.cookies["flavour"][0] == "oatmeal"

    r = b.get(PREFIX + "/cookie/get")
    ok(srv, r)
    assert r.text == "flavour=oatmeal"


def check_errors(srv, allow_500_text=True):
    r = srv.get(PREFIX + "/no/such/page")
    assert r.status == 404, f"{r!r}\n{srv.logs_tail()}"

    r = srv.get(PREFIX + "/boom")
    assert r.status == 500, f"{r!r}\n{srv.logs_tail()}"

    # the traceback reached the error log (the module's, or the
    # framework's own logging through wsgi.errors or stderr)
    assert srv.wait_log(r"RuntimeError: boom", timeout=5), srv.logs_tail()

    # the worker still serves
    r = srv.get(PREFIX + "/hello/again")
    ok(srv, r)
    assert r.text == "Hello, again!"


def multipart(fields, files):
    """(body, content type) of a multipart/form-data body.  fields: name ->
    str; files: name -> (filename, bytes)."""
    boundary = "compat-" + os.urandom(12).hex()
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\n'
            f'Content-Disposition: form-data; name="{name}"\r\n'
            f'\r\n'.encode() + value.encode() + b"\r\n")
    for name, (filename, data) in files.items():
        parts.append(
            f'--{boundary}\r\n'
            f'Content-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\n'
            f'Content-Type: application/octet-stream\r\n'
            f'\r\n'.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, "multipart/form-data; boundary=" + boundary


def check_upload(srv):
    # a small body stays in nginx's memory, a 3 MiB one goes to a temp
    # file; CRLFs and a false boundary inside the file
    for data in (b"small\r\n--compat-not-it\r\n\x00\xff" * 3,
                 os.urandom(3 * 1024 * 1024 + 1)):
        body, ctype = multipart({"note": "a note"},
                                {"file": ("data.bin", data)})
        r = srv.post(PREFIX + "/upload", body,
                     headers={"Content-Type": ctype})
        ok(srv, r)
        assert r.text == "%d %s data.bin a note" % (
            len(data), hashlib.sha256(data).hexdigest())


def check_file(srv, ranges=True, conditional=True):
    want = srv.payload

    r = srv.get(PREFIX + "/file")
    ok(srv, r)
    assert r.header("Content-Length") == str(len(want)), r
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(want).digest()

    r = srv.request("HEAD", PREFIX + "/file")
    ok(srv, r)
    assert r.body == b""

    if conditional:
        lm = r.header("Last-Modified")
        assert lm, r
        r = srv.get(PREFIX + "/file", headers={"If-Modified-Since": lm})
        assert r.status == 304, r
        assert r.body == b""

    if ranges:
        r = srv.get(PREFIX + "/file", headers={"Range": "bytes=1000-1999"})
        assert r.status == 206, r
        assert r.header("Content-Range") == f"bytes 1000-1999/{len(want)}"
        assert r.body == want[1000:2000]


def check_big(srv):
    want = big_body()

    conn = srv.connection()
    try:
        for _ in range(2):              # twice on one keepalive connection
            conn.request("GET", PREFIX + "/big")
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, (resp.status, data[:300])
            assert len(data) == len(want)
            assert hashlib.sha256(data).digest() == \
                hashlib.sha256(want).digest()
            cl = resp.getheader("Content-Length")
            assert cl is None or int(cl) == len(want)

        # HEAD: the headers alone, and the connection goes on
        conn.request("HEAD", PREFIX + "/big")
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        assert resp.read() == b""
        cl = resp.getheader("Content-Length")
        assert cl is None or int(cl) == len(want)

        conn.request("GET", PREFIX + "/hello/head")
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        assert resp.read() == b"Hello, head!"
    finally:
        conn.close()


def radicale_config(d, user, password):
    """A Radicale configuration in directory d: htpasswd users (user with
    password), filesystem storage in d/collections.  Its path."""
    (d / "users").write_text(f"{user}:{password}\n")
    (d / "collections").mkdir(exist_ok=True)
    config = d / "radicale.conf"
    config.write_text(f"""
[auth]
type = htpasswd
htpasswd_filename = {d}/users
htpasswd_encryption = plain
delay = 0

[storage]
filesystem_folder = {d}/collections

[logging]
level = warning
""")
    return config
