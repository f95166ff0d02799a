"""PEP 3333 corner cases (tests/test_pep3333.py), dispatched on PATH_INFO.

Not behind wsgiref.validate: some of these break its rules on purpose.
?side=PATH names a file the application appends notes to.

empty_raise      generator: b"", then raises RuntimeError("pep-empty-boom")
close_raises     an iterable of three pieces whose close() raises
                 RuntimeError("pep-close-boom")
write_exc_info   write(b"written-before-error;"), then start_response()
                 with exc_info; notes "reraised" or "not reraised"
write_in_close   an iterable of b"body;" whose close() calls
                 write(b"from-close;") and notes what happened
fail_in_close    a generator that raises; its close() calls write() and
                 notes what happened
write_in_close_gen  as write_in_close, but a generator of b"", b"body;"
thread_partial   a thread writes "pep-exit-partial" to sys.stdout, no newline
single           [b"hello"], no Content-Length
single_tuple     (b"hello tuple",), no Content-Length
head_empty       a generator for GET, () for HEAD, as Werkzeug answers HEAD
print_parts      print() pieces of lines, control characters, bytes to
                 sys.stdout.buffer; JSON of the streams' attributes
print_partial    print("pep-partial-line", end="") and nothing else
thread_print     a thread that outlives the request prints "pep-thread-line"
errors_ctl       wsgi.errors.write() of text with CR, ESC and DEL in it
print_newlines   print() and write() of text with a newline or a CR inside
print_long       print() of a 5000-character line, then of a short one
print_long_partial  write() of 5000 characters without a newline, nothing
                 else: the request ends with the line cut
"""

import io
import json
import sys
import threading
import time
import urllib.parse


TEXT = [("Content-Type", "text/plain")]


def note(environ, line):
    q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    side = q.get("side", [None])[0]
    if side:
        with open(side, "a") as f:
            f.write(line + "\n")


def empty_raise(environ, start_response):
    start_response("200 OK", TEXT)

    def gen():
        yield b""
        raise RuntimeError("pep-empty-boom")

    return gen()


class CloseRaises:
    def __iter__(self):
        yield b"piece-1;"
        yield b"piece-2;"
        yield b"piece-3"

    def close(self):
        raise RuntimeError("pep-close-boom")


def close_raises(environ, start_response):
    start_response("200 OK", TEXT)
    return CloseRaises()


def write_exc_info(environ, start_response):
    write = start_response("200 OK", TEXT)
    write(b"written-before-error;")
    try:
        raise ValueError("pep-exc-info-boom")
    except ValueError:
        try:
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        except ValueError:
            note(environ, "reraised")
            raise
        note(environ, "not reraised")
    return [b"error page"]


class WriteInClose:
    def __init__(self, environ, write, parts):
        self.environ = environ
        self.write = write
        self.parts = parts

    def __iter__(self):
        return iter(self.parts)

    def close(self):
        try:
            self.write(b"from-close;")
        except Exception as e:
            note(self.environ, "close: %s: %s" % (type(e).__name__, e))
            raise
        note(self.environ, "close: written")


def write_in_close(environ, start_response):
    write = start_response("200 OK", TEXT)
    return WriteInClose(environ, write, [b"body;"])


class FailInClose(WriteInClose):
    def __iter__(self):
        yield b"before-failure;"
        raise RuntimeError("pep-iter-boom")


def fail_in_close(environ, start_response):
    write = start_response("200 OK", TEXT)
    return FailInClose(environ, write, None)


class WriteInCloseGen(WriteInClose):
    def __iter__(self):
        yield b""
        yield b"body;"


def write_in_close_gen(environ, start_response):
    write = start_response("200 OK", TEXT)
    return WriteInCloseGen(environ, write, None)


def thread_partial(environ, start_response):
    def later():
        time.sleep(0.2)
        sys.stdout.write("pep-exit-partial")

    threading.Thread(target=later).start()
    start_response("200 OK", TEXT)
    return [b"started"]


def single(environ, start_response):
    start_response("200 OK", TEXT)
    return [b"hello"]


def single_tuple(environ, start_response):
    start_response("200 OK", TEXT)
    return (b"hello tuple",)


def head_empty(environ, start_response):
    start_response("200 OK", TEXT)
    if environ["REQUEST_METHOD"] == "HEAD":
        return ()

    def gen():
        yield b"streamed body"
    return gen()


def print_parts(environ, start_response):
    out, err = sys.stdout, sys.stderr
    print("pep-one", end="")
    print("-two")
    print("pep-cr-a\rpep-cr-b")
    print("pep-esc-\x1b[31m-red")
    print("pep-utf8-\u00e9\u4e2d")
    print("pep-stderr-line", file=sys.stderr)
    sys.stdout.buffer.write(b"pep-buffer-bytes\n")
    sys.stdout.buffer.write(b"pep-buffer-bad-\xff-utf8\n")
    sys.stdout.buffer.flush()
    sys.stdout.write("pep-flushed-partial")
    sys.stdout.flush()
    try:
        out.fileno()
        fileno = "no exception"
    except io.UnsupportedOperation:
        fileno = "UnsupportedOperation"
    except Exception as e:
        fileno = type(e).__name__
    info = {
        "stdout_type": type(out).__name__,
        "is_textio": isinstance(out, io.TextIOWrapper),
        "stderr_is_textio": isinstance(err, io.TextIOWrapper),
        "encoding": out.encoding,
        "errors": out.errors,
        "line_buffering": out.line_buffering,
        "writable": out.writable(),
        "buffer_writable": out.buffer.writable(),
        "fileno": fileno,
        "isatty": out.isatty(),
        "same_buffer": out.buffer is sys.stdout.buffer,
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info).encode()]


def print_partial(environ, start_response):
    print("pep-partial-line", end="")
    start_response("200 OK", TEXT)
    return [b"printed"]


def thread_print(environ, start_response):
    def later():
        time.sleep(0.3)
        print("pep-thread-line")

    threading.Thread(target=later).start()
    start_response("200 OK", TEXT)
    return [b"started"]


def errors_ctl(environ, start_response):
    err = environ["wsgi.errors"]
    err.write("pep-errors-a\rpep-errors-b\n")
    err.write("pep-errors-esc-\x1b-del-\x7f-tab-\t-end\n")
    start_response("200 OK", TEXT)
    return [b"logged"]


def print_newlines(environ, start_response):
    print("pep-nl-a\npep-nl-b")
    print("pep-nl-cr-a\rpep-nl-cr-b")
    sys.stdout.write("pep-nl-part-1\npep-nl-part-2")
    sys.stdout.write("-more\n")
    print("pep-nl-end")
    start_response("200 OK", TEXT)
    return [b"printed"]


def print_long(environ, start_response):
    print("pep-long-" + "x" * 5000)
    print("pep-long-after")
    start_response("200 OK", TEXT)
    return [b"printed"]


def print_long_partial(environ, start_response):
    sys.stdout.write("pep-long-partial-" + "y" * 5000)
    start_response("200 OK", TEXT)
    return [b"printed"]


ROUTES = {name: obj for name, obj in globals().items()
          if callable(obj) and not name[0].isupper()
          and name not in ("note",)}


def application(environ, start_response):
    name = environ.get("PATH_INFO", "/").strip("/")
    route = ROUTES.get(name)
    if route is None:
        start_response("404 Not Found", TEXT)
        return [b"no such test app"]
    return route(environ, start_response)
