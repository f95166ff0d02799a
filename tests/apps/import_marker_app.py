"""Template (install with harness.install_app(..., MARKER=path)).

At import, appends "<pid>\n" to @MARKER@; the app answers JSON
{"pid": ..., "imports": [pids in the marker file]}.
"""

import json
import os
from wsgiref.validate import validator

MARKER = "@MARKER@"

with open(MARKER, "a") as f:
    f.write("%d\n" % os.getpid())


def app(environ, start_response):
    with open(MARKER) as f:
        imports = [int(x) for x in f.read().split()]
    body = json.dumps({"pid": os.getpid(), "imports": imports}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


application = validator(app)
