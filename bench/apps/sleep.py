"""Waits 10 ms, as an application blocked on a database or an API would."""

import time


def application(environ, start_response):
    time.sleep(0.010)
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", "5")])
    return [b"slept"]
