"""A script without the callable the config names (tests/test_errors.py)."""


def something_else(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wrong callable"]
