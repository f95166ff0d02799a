"""Response-side test application (tests/test_response.py).

One app, dispatched on PATH_INFO, wrapped in wsgiref.validate.  Tests that
need to see what happened inside the app after the response pass a side
file path in the query string (?side=/abs/path); the app appends one line
per event to it.
"""

import os
import random
import sys
import time
import urllib.parse
import wsgiref.validate


TEXT = [("Content-Type", "text/plain")]


def query(environ):
    return dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))


def record(environ, line):
    side = query(environ).get("side")
    if side:
        with open(side, "a") as f:
            f.write(line + "\n")


def set_progress(environ, n):
    side = query(environ).get("side")
    with open(side + ".tmp", "w") as f:
        f.write(str(n))
    # atomic, so the test never reads a half-written number
    os.replace(side + ".tmp", side)


def big_body(seed, size):
    return random.Random(seed).randbytes(size)


# -- start_response / exc_info ------------------------------------------------

def exc_info_before(environ, start_response):
    start_response("200 OK", TEXT + [("X-First", "yes")])
    try:
        raise ValueError("replaced-before-headers")
    except ValueError:
        start_response("503 Service Unavailable",
                       TEXT + [("X-Replaced", "yes")], sys.exc_info())
    return [b"replaced body"]


def exc_info_after(environ, start_response):
    start_response("200 OK", TEXT)

    def gen():
        yield b"first chunk;"
        try:
            raise ValueError("late-failure")
        except ValueError:
            try:
                start_response("500 Internal Server Error", TEXT,
                               sys.exc_info())
            except ValueError as e:
                record(environ, "reraised %s %s" % (type(e).__name__, e))
                raise
            record(environ, "not reraised")
        yield b"SHOULD-NOT-APPEAR"

    return gen()


def exc_info_bad_after(environ, start_response):
    start_response("200 OK", TEXT)

    def gen():
        yield b"first;"
        try:
            start_response("500 Internal Server Error", TEXT,
                           (None, None, None))
        except TypeError as e:
            yield b"TypeError: " + str(e).encode()
        else:
            yield b"not raised"

    return gen()


# -- write() ------------------------------------------------------------------

def write_only(environ, start_response):
    write = start_response("200 OK", TEXT)
    write(b"one,")
    write(b"two,")
    write(b"three")
    return []


def write_list(environ, start_response):
    write = start_response("200 OK", TEXT)
    write(b"w1,")
    write(b"w2,")
    return [b"i1,", b"i2"]


def write_gen(environ, start_response):
    write = start_response("200 OK", TEXT)
    write(b"w1,")

    def gen():
        yield b"g1,"
        yield b""
        yield b"g2"

    return gen()


# -- iterables and close() ----------------------------------------------------

class CustomIterable:
    def __init__(self, environ, parts):
        self.environ = environ
        self.parts = parts

    def __iter__(self):
        return iter(self.parts)

    def close(self):
        record(self.environ, "closed custom")


def iterable(environ, start_response):
    kind = query(environ)["kind"]
    parts = [b"alpha,", b"beta,", b"gamma"]
    start_response("200 OK", TEXT)
    if kind == "list":
        return parts
    if kind == "tuple":
        return tuple(parts)
    if kind == "custom":
        return CustomIterable(environ, parts)

    def gen():
        try:
            yield from parts
        finally:
            record(environ, "closed generator")

    return gen()


# -- framing ------------------------------------------------------------------

def with_cl(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "11")])
    return [b"hello", b" ", b"world"]


def no_cl(environ, start_response):
    start_response("200 OK", TEXT)

    def gen():
        yield b"chunk-one,"
        yield b"chunk-two,"
        yield b"chunk-three"

    return gen()


def too_long(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "5")])
    return [b"hel", b"loEXTRA", b"MORE-EXTRA"]


def too_short(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "100")])
    return [b"short"]


def second(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "6")])
    return [b"second"]


def status(environ, start_response):
    code = query(environ)["code"]
    reason = {"204": "No Content", "304": "Not Modified"}[code]
    start_response(code + " " + reason, [("X-Code", code)])
    if query(environ).get("body"):
        # not allowed for 204/304; the server must not send it
        return [b"body-the-server-must-drop"]
    return []


def text(environ, start_response):
    body = b"".join(b"line %05d of some compressible text\n" % i
                    for i in range(1000))
    headers = list(TEXT)
    if query(environ).get("cl"):
        headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    return [body[:5000], body[5000:]]


def keepalive(environ, start_response):
    mode = query(environ).get("mode", "cl")
    body = ("port=%s" % environ.get("REMOTE_PORT")).encode()
    if mode == "cl":
        start_response("200 OK", TEXT + [("Content-Length", str(len(body)))])
        return [body]
    if mode == "write":
        write = start_response("200 OK", TEXT)
        write(body)
        return []
    start_response("200 OK", TEXT)
    return iter([body[:3], body[3:]])


def date_server(environ, start_response):
    start_response("200 OK", TEXT + [
        ("Date", "Mon, 01 Jan 2001 00:00:00 GMT"),
        ("Server", "resp-app/1.0"),
    ])
    return [b"ok"]


def reason(environ, start_response):
    start_response("299 Custom Thing", TEXT)
    return [b"custom"]


def big(environ, start_response):
    q = query(environ)
    size = int(q["size"])
    data = big_body(int(q["seed"]), size)
    headers = list(TEXT)
    if q.get("cl"):
        headers.append(("Content-Length", str(size)))
    start_response("200 OK", headers)

    def gen():
        rnd = random.Random(1)
        pos = 0
        while pos < size:
            n = rnd.randint(1, 200000)
            yield data[pos:pos + n]
            pos += n

    return gen()


# -- streaming ----------------------------------------------------------------

def stream(environ, start_response):
    go = query(environ).get("go")
    start_response("200 OK", TEXT)

    def gen():
        yield b"first-chunk;"
        # the second waits (at most 10 s) until the test creates ?go=
        deadline = time.monotonic() + 10
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.005)
        yield b"second-chunk"

    return gen()


def backpressure(environ, start_response):
    n = int(query(environ).get("n", "1024"))
    start_response("200 OK", TEXT + [("Content-Length", str(n * 65536))])

    def gen():
        chunk = b"x" * 65536
        try:
            for i in range(n):
                set_progress(environ, i + 1)
                yield chunk
        finally:
            with open(query(environ)["side"] + ".closed", "w") as f:
                f.write("closed")

    return gen()


def forever(environ, start_response):
    start_response("200 OK", TEXT)

    def gen():
        try:
            for i in range(2000):
                yield b"tick %d\n" % i
                time.sleep(0.02)
            record(environ, "finished")
        finally:
            record(environ, "closed forever")

    return gen()


def ok(environ, start_response):
    start_response("200 OK", TEXT)
    return [b"ok"]


ROUTES = {
    "/exc_info_before": exc_info_before,
    "/exc_info_after": exc_info_after,
    "/exc_info_bad_after": exc_info_bad_after,
    "/write_only": write_only,
    "/write_list": write_list,
    "/write_gen": write_gen,
    "/iterable": iterable,
    "/with_cl": with_cl,
    "/no_cl": no_cl,
    "/too_long": too_long,
    "/too_short": too_short,
    "/second": second,
    "/status": status,
    "/text": text,
    "/keepalive": keepalive,
    "/date_server": date_server,
    "/reason": reason,
    "/big": big,
    "/stream": stream,
    "/backpressure": backpressure,
    "/forever": forever,
    "/ok": ok,
}


def raw_application(environ, start_response):
    return ROUTES[environ["PATH_INFO"]](environ, start_response)


application = wsgiref.validate.validator(raw_application)
