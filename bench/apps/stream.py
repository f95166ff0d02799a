"""100 chunks of 1 KiB from a generator, no Content-Length (chunked)."""

CHUNK = b"x" * 1024


def generate():
    for _ in range(100):
        yield CHUNK


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return generate()
