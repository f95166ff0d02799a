"""Template (SIDE, BEGAN): /start starts a thread that imports
pep_inflight_mod once pep_inflight_fail.py began importing (file @BEGAN@,
at most 10 s), and appends what it got to @SIDE@ (tests/test_pep3333.py):
a failed import of another script must not undo an import in flight on
another thread.
"""

import os
import threading
import time


def later():
    deadline = time.monotonic() + 10
    while not os.path.exists("@BEGAN@") and time.monotonic() < deadline:
        time.sleep(0.005)
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
