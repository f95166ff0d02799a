"""One WSGI entry point for the peers (uWSGI, gunicorn, Apache mod_wsgi),
which host a single application each: PATH_INFO picks the workload's app.
nginx mod_wsgi maps each workload's location to its script directly, so
it skips this one dictionary lookup."""

import body64k
import cpu
import echo
import file1m
import hello
import sleep
import stream

ROUTES = {
    "/hello": hello.application,
    "/body64k": body64k.application,
    "/stream": stream.application,
    "/echo": echo.application,
    "/sleep": sleep.application,
    "/file1m": file1m.application,
    "/cpu": cpu.application,
}


def application(environ, start_response):
    app = ROUTES.get(environ.get("PATH_INFO", ""))
    if app is None:
        start_response("404 Not Found", [("Content-Type", "text/plain"),
                                         ("Content-Length", "10")])
        return [b"not found\n"]
    return app(environ, start_response)
