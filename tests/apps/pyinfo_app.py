"""Reports interpreter facts as JSON.

?import=NAME additionally imports module NAME and reports its VALUE and
__file__ (for wsgi_python_path tests).
"""

import json
import os
import sys
import threading
from urllib.parse import parse_qs
from wsgiref.validate import validator


def app(environ, start_response):
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    out = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "optimize": sys.flags.optimize,
        "path": sys.path,
        "prefix": sys.prefix,
        "exec_prefix": sys.exec_prefix,
        "base_prefix": sys.base_prefix,
        "version": list(sys.version_info[:3]),
        "threads": threading.active_count(),
        "assert_enabled": True,
        "docstring": _documented.__doc__,
        "name": __name__,
    }
    try:
        assert False
    except AssertionError:
        pass
    else:
        out["assert_enabled"] = False
    for name in qs.get("import", []):
        try:
            mod = __import__(name)
            out["import"] = {"value": getattr(mod, "VALUE", None),
                             "file": getattr(mod, "__file__", None)}
        except Exception as e:  # report, the test asserts on it
            out["import"] = {"error": repr(e)}
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def _documented():
    """docstring present"""

application = validator(app)
