"""Keeps the environ of every request with ?keep=1, and answers with JSON:
whether this environ is one it kept, and the PATH_INFO and HTTP_COOKIE of
the last one it kept, as they are now (a later request must not change a
kept environ, nor be handed one)."""

import json
from wsgiref.validate import validator

KEPT = []


def app(environ, start_response):
    out = {"path": environ["PATH_INFO"],
           "cookie": environ.get("HTTP_COOKIE"),
           "is_kept": any(environ is e for e in KEPT)}
    if KEPT:
        out["kept_path"] = KEPT[-1]["PATH_INFO"]
        out["kept_cookie"] = KEPT[-1].get("HTTP_COOKIE")
        out["kept_keys"] = len(KEPT[-1])
    if environ.get("QUERY_STRING") == "keep=1":
        KEPT.append(environ)
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


application = validator(app)
unchanged = app     # see env_app.py
