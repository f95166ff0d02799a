"""Mutable bytes-like body chunks, for tests/test_threads.py.

Not behind wsgiref.validate: the validator only lets exact bytes through,
and these apps hand out bytearrays and memoryviews on purpose.

?kind= bytearray | memoryview | write_bytearray | write_memoryview
?n= chunk size, ?letters= e.g. "AB": ONE bytearray of n bytes is filled
with each letter in turn and handed over (yielded or passed to write())
after each fill, so the client must get letter*n for every letter.
"""

from urllib.parse import parse_qs


def params(environ):
    return {k: v[0] for k, v in
            parse_qs(environ.get("QUERY_STRING", "")).items()}


def mutate(environ, start_response):
    p = params(environ)
    kind = p["kind"]
    n = int(p.get("n", str(100 * 1024)))
    letters = p.get("letters", "AB").encode()
    headers = [("Content-Type", "application/octet-stream"),
               ("Content-Length", str(n * len(letters)))]
    buf = bytearray(n)

    if kind.startswith("write_"):
        write = start_response("200 OK", headers)
        for c in letters:
            buf[:] = bytes([c]) * n
            write(buf if kind == "write_bytearray" else memoryview(buf))
        return []

    def gen():
        start_response("200 OK", headers)
        for c in letters:
            buf[:] = bytes([c]) * n
            yield buf if kind == "bytearray" else memoryview(buf)

    return gen()
