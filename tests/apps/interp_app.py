"""Reports which interpreter runs it, for the sub-interpreter tests.

JSON: pid, the environ's mod_wsgi.application_group, ngx.interpreter, the
module-global `hits` of this script and `shared.value` of the module
`interp_shared` (found on wsgi_python_path), and `pathmod.VALUE` when a
`pathmod` is importable.  ?set=X sets interp_shared.value to X first.
"""

import json
import os
import sys
from urllib.parse import parse_qs

import ngx
import interp_shared

try:
    import pathmod
except ImportError:
    pathmod = None

hits = 0


def application(environ, start_response):
    global hits
    hits += 1
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    if "set" in qs:
        interp_shared.value = qs["set"][0]
    body = json.dumps({
        "pid": os.getpid(),
        "group": environ.get("mod_wsgi.application_group"),
        "interpreter": ngx.interpreter,
        "hits": hits,
        "shared": interp_shared.value,
        "pathmod": pathmod.VALUE if pathmod else None,
        "modules": len(sys.modules),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
