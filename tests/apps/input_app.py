"""Exercises wsgi.input; ?mode=...&n=N selects the access pattern.

Answers JSON: {"mode", "content_length", "content_type", "len", "sha256",
"lengths" (of each piece returned), "pieces" (latin-1 text of each piece,
only when the body is < 64 KiB), "after" (repr of reads done at EOF),
"types" (type names of returned pieces)}.  mode=echo returns the raw body.

wsgiref.validate wraps the app, but its InputWrapper forbids read() without
an argument (which PEP 3333 allows), so the app uses the original
wsgi.input object (InputWrapper.input).
"""

import hashlib
import json
from urllib.parse import parse_qs
from wsgiref.validate import validator

MAX_PIECES = 1_000_000


def loop(fn, *args):
    pieces = []
    for _ in range(MAX_PIECES):
        p = fn(*args)
        if not p:
            pieces.append(p)
            break
        pieces.append(p)
    return pieces


def app(environ, start_response):
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    mode = qs.get("mode", ["read"])[0]
    n = int(qs.get("n", ["-1"])[0])
    inp = environ["wsgi.input"]
    inp = getattr(inp, "input", inp)
    after = []
    if mode == "echo":
        body = inp.read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if mode == "read":
        pieces = [inp.read()]
    elif mode == "read_neg":
        pieces = [inp.read(-1)]
    elif mode == "read_none":
        pieces = [inp.read(None)]
    elif mode == "read_n":
        pieces = loop(inp.read, n)
    elif mode == "read_zero":
        pieces = [inp.read(0), inp.read()]
    elif mode == "readline":
        pieces = loop(inp.readline)
    elif mode == "readline_n":
        pieces = loop(inp.readline, n)
    elif mode == "readlines":
        pieces = inp.readlines()
    elif mode == "readlines_hint":
        pieces = inp.readlines(n)
        after_rest = inp.read()
        after.append(after_rest.decode("latin-1"))
    elif mode == "iter":
        pieces = [p for p, _ in zip(inp, range(MAX_PIECES))]
    elif mode == "mixed":
        pieces = [inp.read(3), inp.readline(), inp.read(2)] + inp.readlines()
    else:
        raise ValueError("unknown mode %r" % mode)
    if mode != "readlines_hint":
        after = [repr(inp.read()), repr(inp.read(5)), repr(inp.readline()),
                 repr(inp.readlines())]
    data = b"".join(p for p in pieces if isinstance(p, bytes))
    out = {
        "mode": mode,
        "content_length": environ.get("CONTENT_LENGTH"),
        "content_type": environ.get("CONTENT_TYPE"),
        "len": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "lengths": [len(p) for p in pieces],
        "types": sorted({type(p).__name__ for p in pieces}),
        "pieces": ([p.decode("latin-1") for p in pieces]
                   if len(data) < 65536 else None),
        "after": after,
    }
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


application = validator(app)
