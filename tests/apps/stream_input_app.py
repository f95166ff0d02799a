"""wsgi_request_buffering off: the body as it arrives.

?side=FILE  appends "started" when the app begins and "read N" after each
            read; reads in blocks of ?n= bytes (64 KiB) until b"".
Answers "CONTENT_LENGTH total sha256 terminated" or, when a read fails,
"error ExceptionType" (also appended to the side file).
"""

import hashlib
from urllib.parse import parse_qs
from wsgiref.validate import validator


def note(side, text):
    if side:
        with open(side, "a") as f:
            f.write(text + "\n")


def app(environ, start_response):
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    side = qs.get("side", [None])[0]
    n = int(qs.get("n", ["65536"])[0])
    inp = environ["wsgi.input"]
    inp = getattr(inp, "input", inp)
    note(side, "started")
    h = hashlib.sha256()
    total = 0
    try:
        while True:
            block = inp.read(n)
            if not block:
                break
            h.update(block)
            total += len(block)
            note(side, "read %d" % total)
        out = "%s %d %s %s\n" % (environ.get("CONTENT_LENGTH"), total,
                                 h.hexdigest(),
                                 environ["wsgi.input_terminated"])
    except OSError as e:
        out = "error %s\n" % type(e).__name__
        note(side, out.strip())
    body = out.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


application = validator(app)
