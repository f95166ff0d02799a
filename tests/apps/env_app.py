"""Dumps the WSGI environ as JSON.

str values are copied as is; every other value becomes
{"type": <type name>, "repr": <repr>}.  wsgiref.validate wraps wsgi.input
and wsgi.errors, so their originals are reported.  "_pid" is os.getpid().
?nap=MS in the query string: it sleeps that long first.
"""

import json
import os
import re
import time
from wsgiref.validate import validator


def describe(key, value):
    if type(value) is str:
        return value
    if key == "wsgi.input":
        value = getattr(value, "input", value)
    elif key == "wsgi.errors":
        value = getattr(value, "errors", value)
    d = {"type": type(value).__name__, "repr": repr(value),
         "callable": callable(value),
         "iterable": hasattr(value, "__iter__")}
    if key in ("wsgi.input", "wsgi.errors"):
        d["attrs"] = sorted(a for a in dir(value) if not a.startswith("_"))
    if key == "wsgi.version":
        d["value"] = list(value) if isinstance(value, tuple) else None
    return d


def app(environ, start_response):
    # ?nap=MS: sleeps first, so that requests on a thread pool overlap
    nap = re.search(r"(?:^|&)nap=(\d+)", environ.get("QUERY_STRING", ""))
    if nap:
        time.sleep(int(nap.group(1)) / 1000)
    out = {k: describe(k, v) for k, v in environ.items()}
    out["_pid"] = os.getpid()
    body = json.dumps(out, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


application = validator(app)

# without the validator, which puts its wrappers of wsgi.input and
# wsgi.errors in the environ: an environ left as it was serves the next
# request, and this is how tests get there
unchanged = app
