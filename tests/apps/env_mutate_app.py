"""Dumps the environ's str values as JSON, then vandalizes the environ: a
later request must not see any of it."""

import json
from wsgiref.validate import validator


def app(environ, start_response):
    out = {k: v for k, v in environ.items() if type(v) is str}
    body = json.dumps(out, sort_keys=True).encode()
    for key in ("REQUEST_METHOD", "SERVER_NAME", "HTTP_USER_AGENT",
                "HTTP_HOST", "QUERY_STRING"):
        environ.pop(key, None)
    environ["SERVER_PORT"] = "1"
    environ["REMOTE_ADDR"] = "10.9.9.9"
    environ["HTTP_ACCEPT"] = "vandalized"
    environ["X_ADDED"] = "yes"
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


application = validator(app)
