"""wsgi.file_wrapper application for tests/test_features.py.

GET .../file?path=FILE&mode=MODE[&offset=N][&cl=N][&side=PATH][&blksize=N]
returns environ['wsgi.file_wrapper'] over a file-like positioned at
?offset= (default 0):
  seek      a real file (io.BufferedReader), f.seek(offset)
  read      a real file, f.read(offset): buffered, so the OS position of
            the descriptor is past the file-like's position
  bytesio   io.BytesIO of the file's content, seek(offset)
  readonly  an object with only read() and close()
?cl= sets the response's Content-Length, ?etag= an ETag.  Every file-like
appends "closed MODE" to ?side= when it is closed.
GET .../second answers b"second" with a Content-Length.

`application` is the bare callable: the server sees its own file_wrapper
object (and may send the file itself).  `validated` is the same behind
wsgiref.validate, whose iterator wrapper hides the file_wrapper: the
server must read it block by block.
"""

import io
import urllib.parse
import wsgiref.validate


def record(side, line):
    if side:
        with open(side, "a") as f:
            f.write(line + "\n")


class RecordingReader(io.BufferedReader):
    """A real file (fileno(), tell()) that notes its close()."""

    side = None

    def close(self):
        if not self.closed:
            record(self.side, "closed seek/read")
        super().close()


class RecordingBytesIO(io.BytesIO):
    side = None

    def close(self):
        if not self.closed:
            record(self.side, "closed bytesio")
        super().close()


class ReadOnly:
    """A minimal file-like: read(size) and close() only."""

    def __init__(self, data, side):
        self.data = data
        self.pos = 0
        self.side = side

    def read(self, size=-1):
        if size is None or size < 0:
            size = len(self.data) - self.pos
        chunk = self.data[self.pos:self.pos + size]
        self.pos += len(chunk)
        return chunk

    def close(self):
        record(self.side, "closed readonly")


def route(environ):
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return path.rstrip("/").rsplit("/", 1)[-1]


def application(environ, start_response):
    q = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))

    if route(environ) == "second":
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", "6")])
        return [b"second"]

    mode = q["mode"]
    offset = int(q.get("offset", "0"))
    side = q.get("side")

    if mode in ("seek", "read"):
        f = RecordingReader(io.FileIO(q["path"], "rb"))
        f.side = side
        if mode == "seek":
            f.seek(offset)
        else:
            assert len(f.read(offset)) == offset
    else:
        with open(q["path"], "rb") as src:
            data = src.read()
        if mode == "bytesio":
            f = RecordingBytesIO(data)
            f.side = side
            f.seek(offset)
        else:
            f = ReadOnly(data, side)
            f.read(offset)

    headers = [("Content-Type", q.get("ctype", "application/octet-stream"))]
    if "cl" in q:
        headers.append(("Content-Length", q["cl"]))
    if "etag" in q:
        headers.append(("ETag", q["etag"]))
    start_response("200 OK", headers)

    if "blksize" in q:
        return environ["wsgi.file_wrapper"](f, int(q["blksize"]))
    return environ["wsgi.file_wrapper"](f)


validated = wsgiref.validate.validator(application)
