"""hello world: the smallest useful response, 5 bytes with a length."""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", "5")])
    return [b"hello"]
