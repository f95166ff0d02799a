"""Applications that raise (tests/test_errors.py), behind wsgiref.validate.

Dispatched on PATH_INFO.  ?side=/abs/path names a file the app appends
events to (close() calls).
"""

import sys
import urllib.parse
import wsgiref.validate


TEXT = [("Content-Type", "text/plain")]
SECRET = "boom-secret-4711"


def record(environ, line):
    q = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
    if q.get("side"):
        with open(q["side"], "a") as f:
            f.write(line + "\n")


def fail_in_helper():
    raise ValueError(SECRET)


def before_start(environ, start_response):
    fail_in_helper()


def after_start(environ, start_response):
    start_response("200 OK", TEXT)
    fail_in_helper()


class Failing:
    """Iterable yielding `good` chunks, then raising; close() recorded."""

    def __init__(self, environ, good):
        self.environ = environ
        self.good = list(good)

    def __iter__(self):
        return self

    def __next__(self):
        if self.good:
            return self.good.pop(0)
        fail_in_helper()

    def close(self):
        record(self.environ, "closed")


def in_first_next(environ, start_response):
    start_response("200 OK", TEXT)
    return Failing(environ, [])


def after_first_chunk(environ, start_response):
    start_response("200 OK", TEXT)
    return Failing(environ, [b"partial-data;"])


def after_first_chunk_cl(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "100")])
    return Failing(environ, [b"partial-data;"])


def errors(environ, start_response):
    err = environ["wsgi.errors"]
    err.write("errline-a\nerrline-b\n")
    err.writelines(["errline-c\n", "errline-d\n"])
    err.flush()
    print("stdout-line")
    print("stderr-line", file=sys.stderr)
    start_response("200 OK", TEXT)
    return [b"logged"]


def ok(environ, start_response):
    start_response("200 OK", TEXT)
    return [b"ok"]


ROUTES = {
    "/before_start": before_start,
    "/after_start": after_start,
    "/in_first_next": in_first_next,
    "/after_first_chunk": after_first_chunk,
    "/after_first_chunk_cl": after_first_chunk_cl,
    "/errors": errors,
    "/ok": ok,
}


def raw_application(environ, start_response):
    return ROUTES[environ["PATH_INFO"]](environ, start_response)


application = wsgiref.validate.validator(raw_application)
