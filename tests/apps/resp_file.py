"""wsgi.file_wrapper test application (tests/test_response.py).

GET /?path=FILE&mode=MODE returns environ['wsgi.file_wrapper'] over a
file-like positioned at offset 100:
  seek     real file, f.seek(100)
  read     real file, f.read(100) (buffered: the OS position is elsewhere)
  bytesio  io.BytesIO of the file's content, seek(100)
  custom   an object with only read() and close()
The file-like is kept in LAST; GET /closed reports whether it was closed.

`application` is the bare app (so the server sees its own file_wrapper
object); `validated` is the same app behind wsgiref.validate.
"""

import io
import urllib.parse
import wsgiref.validate


LAST = {}


class ReadOnly:
    """A minimal file-like: read(size) and close() only."""

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.closed = False

    def read(self, size=-1):
        if size is None or size < 0:
            size = len(self.data) - self.pos
        chunk = self.data[self.pos:self.pos + size]
        self.pos += len(chunk)
        return chunk

    def close(self):
        self.closed = True


def application(environ, start_response):
    q = dict(urllib.parse.parse_qsl(environ["QUERY_STRING"]))
    if environ["PATH_INFO"] == "/closed":
        start_response("200 OK", [("Content-Type", "text/plain")])
        f = LAST.get("f")
        return [b"none" if f is None else str(f.closed).encode()]

    mode = q["mode"]
    if mode in ("seek", "read"):
        f = open(q["path"], "rb")
        if mode == "seek":
            f.seek(100)
        else:
            assert len(f.read(100)) == 100
    else:
        with open(q["path"], "rb") as src:
            data = src.read()
        if mode == "bytesio":
            f = io.BytesIO(data)
            f.seek(100)
        else:
            f = ReadOnly(data)
            f.read(100)
    LAST["f"] = f
    if q.get("blksize"):
        w = environ["wsgi.file_wrapper"](f, int(q["blksize"]))
    else:
        w = environ["wsgi.file_wrapper"](f)
    # the wrapper's attributes, when it is the server's own
    attrs = "%s %s" % (getattr(w, "blksize", "-"),
                       getattr(w, "filelike", None) is f)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("X-Wrapper", attrs)])
    return w


validated = wsgiref.validate.validator(application)
