"""Template (SIDE): /start starts a thread that, 0.3 s later, imports
pep_inflight_mod (1 s at import) and appends what it got to @SIDE@
(tests/test_pep3333.py): a failed import of another script must not undo
an import in flight on another thread.
"""

import threading
import time


def later():
    time.sleep(0.3)
    try:
        import pep_inflight_mod
        got = pep_inflight_mod.VALUE
    except BaseException as e:
        got = f"{type(e).__name__}: {e}"
    with open("@SIDE@", "a") as f:
        f.write(got + "\n")


def application(environ, start_response):
    threading.Thread(target=later).start()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"started"]
