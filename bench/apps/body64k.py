"""64 KiB body in one bytes object; run.py serves the same bytes as a
static file (static/64k.bin) for the nginx baseline."""

BODY = bytes(range(256)) * 256


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]
