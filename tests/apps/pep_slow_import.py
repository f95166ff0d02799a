"""Template (MARKER): the first import fails; the next ones take 1 s
before the application is defined (tests/test_pep3333.py).
"""

import os
import time

if not os.path.exists("@MARKER@"):
    with open("@MARKER@", "w") as f:
        f.write("failed once\n")
    raise RuntimeError("pep-slow-import-boom")

time.sleep(1.0)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"pep-slow-import-ok"]
