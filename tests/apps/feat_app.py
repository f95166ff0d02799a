"""Applications for tests/test_features.py (ranges, conditional GET,
optimize_send_headers, output and write() buffering, request bodies).

One script, dispatched on the last segment of SCRIPT_NAME + PATH_INFO, so
that it can be mounted in any location:

    wsgi_pass {apps}/feat_app.py;        behind wsgiref.validate
    wsgi_pass {apps}/feat_app.py bare;   the same, without the validator
                                         (the server sees the app's own
                                         list, e.g. to add Content-Length)

Parameters come from the query string; ?side=PATH names a side file the
application appends one line per event to.

list         ?size=&seed= body (body_bytes()) as a list of 3 pieces;
             ?cl=1 Content-Length (plus ?cl_extra= bytes that never come),
             ?etag= ETag, ?lm= Last-Modified
gen          generator of ?chunk= (1024) byte pieces of the same body,
             sleeping ?delay= (0.002) s before each piece after the first;
             ?cl=1 Content-Length
cond         200 (reason ?reason=, default OK) with ?etag= and ?lm=,
             body b"conditional body"
opt          generator: yields b"" right after start_response(), then notes
             "ran" and yields b"body after the empty item"; "closed" from
             its finally; ?etag= ETag
outbuf       generator of ?n= (64) pieces of ?size= (1024) bytes
             (chunk_bytes()); after the first ?hold= (1) of them, waits (at
             most 10 s) until ?go= exists, if given
writes       write() ?n= (100) pieces of ?size= (1000) bytes (chunk_bytes()),
             then returns [b"end"] (?ret=list) or a generator of b"g1", b"g2"
             (?ret=gen)
write_replace  write(b"partial;"), then start_response() again with
             exc_info: 500, X-Replaced: yes, [b"error page"]
write_spool  write() ?n= (256) pieces of ?size= (4096) bytes, touch
             ?marker=, wait (at most 5 s) until ?go= exists, return [b"end"]
write_sleep  write(b"first;"), sleep ?sleep= (1) s, or wait (at most 5 s)
             until ?go= exists, return [b"last"]
input        reads wsgi.input in 1 MiB blocks: JSON {"len", "sha256",
             "content_length", "reads"}
second       b"second" with a Content-Length
"""

import hashlib
import json
import os
import random
import sys
import time
import urllib.parse
import wsgiref.validate


def query(environ):
    return dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))


def record(environ, line):
    side = query(environ).get("side")
    if side:
        with open(side, "a") as f:
            f.write(line + "\n")


def body_bytes(seed, size):
    return random.Random(seed).randbytes(size)


def chunk_bytes(i, size):
    head = b"%06d|" % i
    return head + bytes([65 + i % 26]) * (size - len(head))


def _list(environ, start_response):
    q = query(environ)
    size = int(q.get("size", "10000"))
    data = body_bytes(int(q.get("seed", "1")), size)
    headers = [("Content-Type", "application/octet-stream")]
    if q.get("cl"):
        headers.append(("Content-Length",
                        str(size + int(q.get("cl_extra", "0")))))
    if q.get("etag"):
        headers.append(("ETag", q["etag"]))
    if q.get("lm"):
        headers.append(("Last-Modified", q["lm"]))
    start_response("200 OK", headers)
    third = size // 3
    return [data[:third], data[third:2 * third], data[2 * third:]]


def _gen(environ, start_response):
    q = query(environ)
    size = int(q.get("size", str(200 * 1024)))
    chunk = int(q.get("chunk", "1024"))
    delay = float(q.get("delay", "0.002"))
    data = body_bytes(int(q.get("seed", "1")), size)
    headers = [("Content-Type", "application/octet-stream")]
    if q.get("cl"):
        headers.append(("Content-Length", str(size)))
    start_response("200 OK", headers)

    def gen():
        for pos in range(0, size, chunk):
            if pos:
                time.sleep(delay)
            yield data[pos:pos + chunk]

    return gen()


def _cond(environ, start_response):
    q = query(environ)
    body = b"conditional body"
    headers = [("Content-Type", "text/plain"),
               ("Content-Length", str(len(body)))]
    if q.get("etag"):
        headers.append(("ETag", q["etag"]))
    if q.get("lm"):
        headers.append(("Last-Modified", q["lm"]))
    start_response("200 " + q.get("reason", "OK"), headers)
    return [body]


def _opt(environ, start_response):
    q = query(environ)
    headers = [("Content-Type", "text/plain")]
    if q.get("etag"):
        headers.append(("ETag", q["etag"]))
    start_response("200 OK", headers)

    def gen():
        try:
            yield b""
            record(environ, "ran")
            yield b"body after the empty item"
        finally:
            record(environ, "closed")

    return gen()


def _outbuf(environ, start_response):
    q = query(environ)
    n = int(q.get("n", "64"))
    size = int(q.get("size", "1024"))
    hold = int(q.get("hold", "1"))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def gen():
        for i in range(n):
            if i == hold and q.get("go"):
                deadline = time.monotonic() + 10
                while not os.path.exists(q["go"]) \
                        and time.monotonic() < deadline:
                    time.sleep(0.005)
            yield chunk_bytes(i, size)

    return gen()


def _writes(environ, start_response):
    q = query(environ)
    n = int(q.get("n", "100"))
    size = int(q.get("size", "1000"))
    write = start_response("200 OK",
                           [("Content-Type", "application/octet-stream")])
    for i in range(n):
        write(chunk_bytes(i, size))
    if q.get("ret", "list") == "list":
        return [b"end"]

    def gen():
        yield b"g1"
        yield b"g2"

    return gen()


def _write_replace(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("X-First", "yes")])
    write(b"partial;")
    try:
        raise ValueError("replace after write")
    except ValueError:
        start_response("500 Internal Server Error",
                       [("Content-Type", "text/plain"),
                        ("X-Replaced", "yes")], sys.exc_info())
    return [b"error page"]


def _write_spool(environ, start_response):
    q = query(environ)
    n = int(q.get("n", "256"))
    size = int(q.get("size", "4096"))
    write = start_response("200 OK",
                           [("Content-Type", "application/octet-stream")])
    for i in range(n):
        write(chunk_bytes(i, size))
    if q.get("marker"):
        with open(q["marker"], "w") as f:
            f.write(str(os.getpid()))
    if q.get("go"):
        deadline = time.monotonic() + 5
        while not os.path.exists(q["go"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    return [b"end"]


def _write_sleep(environ, start_response):
    q = query(environ)
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"first;")
    if q.get("go"):
        deadline = time.monotonic() + 5
        while not os.path.exists(q["go"]) and time.monotonic() < deadline:
            time.sleep(0.005)
    else:
        time.sleep(float(q.get("sleep", "1")))
    return [b"last"]


def _input(environ, start_response):
    inp = environ["wsgi.input"]
    h = hashlib.sha256()
    total = reads = 0
    for _ in range(100000):
        block = inp.read(1 << 20)
        reads += 1
        if not block:
            break
        h.update(block)
        total += len(block)
    body = json.dumps({"len": total, "sha256": h.hexdigest(),
                       "content_length": environ.get("CONTENT_LENGTH"),
                       "reads": reads}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _second(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", "6")])
    return [b"second"]


ROUTES = {
    "list": _list,
    "gen": _gen,
    "cond": _cond,
    "opt": _opt,
    "outbuf": _outbuf,
    "writes": _writes,
    "write_replace": _write_replace,
    "write_spool": _write_spool,
    "write_sleep": _write_sleep,
    "input": _input,
    "second": _second,
}


def bare(environ, start_response):
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return ROUTES[path.rstrip("/").rsplit("/", 1)[-1]](environ,
                                                       start_response)


application = wsgiref.validate.validator(bare)
