"""Answers with the environ's str values as JSON, then changes the environ
as ?do= says, or keeps it: a later request must see none of it.  No
wsgiref.validate here: its wrappers would change every environ."""

import json

KEPT = []


def application(environ, start_response):
    out = {k: v for k, v in environ.items() if type(v) is str}
    out["is_kept"] = any(environ is e for e in KEPT)
    body = json.dumps(out, sort_keys=True).encode()
    do = environ.get("QUERY_STRING")
    if do == "do=replace":
        environ["HTTP_ACCEPT"] = "vandalized"
        environ["SERVER_PORT"] = "1"
    elif do == "do=swap":
        del environ["REQUEST_METHOD"]
        environ["X_ADDED"] = "yes"
    elif do == "do=add":
        environ["X_ADDED"] = "yes"
    elif do == "do=keep":
        KEPT.append(environ)
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
