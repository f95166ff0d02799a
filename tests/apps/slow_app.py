"""Sleeps ?t=SECONDS after writing its pid to ?marker=PATH (if given);
with ?go=PATH, waits until PATH exists instead, ?t= seconds at most.

Answers "done <pid> <t>\n".
"""

import os
import time
from urllib.parse import parse_qs
from wsgiref.validate import validator


def app(environ, start_response):
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    t = float(qs.get("t", ["1"])[0])
    marker = qs.get("marker", [None])[0]
    if marker:
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
    go = qs.get("go", [None])[0]
    if go:
        deadline = time.monotonic() + t
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.005)
    else:
        time.sleep(t)
    body = ("done %d %s\n" % (os.getpid(), t)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


application = validator(app)
