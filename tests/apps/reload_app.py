"""The script tests/test_reloading.py rewrites: each version is this text
with @VERSION@ replaced.

/            "VERSION pid reload_mod.VALUE\n", reload_mod from
             wsgi_python_path when the test asks (@IMPORT@)
/stream?go=PATH&n=N
             "start VERSION\n", then chunks of N bytes (64 KB by default)
             until PATH exists, then "end VERSION\n": with a client that
             does not read, the worker waits to send, and serves other
             requests meanwhile, in either execution mode
"""

import os
from urllib.parse import parse_qs

# @IMPORT@

VERSION = int("@VERSION@")


def value():
    mod = globals().get("reload_mod")
    return mod.VALUE if mod else "-"


def stream(go, n):
    yield b"start %d\n" % VERSION
    for _ in range(2000):
        if os.path.exists(go):
            break
        yield b"x" * n
    yield b"end %d\n" % VERSION


def application(environ, start_response):
    if environ["PATH_INFO"] == "/stream":
        qs = parse_qs(environ["QUERY_STRING"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return stream(qs["go"][0], int(qs.get("n", ["65536"])[0]))

    body = b"%d %d %s\n" % (VERSION, os.getpid(), value().encode())
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
