"""Template (install with harness.install_app(..., HOW=..., FLAG=path)).

While the file @FLAG@ exists, importing this script kills the process:
HOW "segv" reads address 0 (ctypes.string_at(0)), "kill" sends itself
SIGSEGV, "sigkill" SIGKILL, "exitN" calls os._exit(N); "sleep" sleeps
1 s and imports.  While @FLAG@.raise exists, the import raises
RuntimeError; while @FLAG@.wait exists too, the import waits.
Without the flags it imports and answers "imported".
"""

import os
import signal
import time

HOW = "@HOW@"

if os.path.exists("@FLAG@.raise"):
    raise RuntimeError("crash_import: told to raise")

if os.path.exists("@FLAG@"):
    while os.path.exists("@FLAG@.wait"):
        time.sleep(0.05)
    if HOW == "segv":
        import ctypes
        ctypes.string_at(0)
    elif HOW == "kill":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif HOW == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif HOW.startswith("exit"):
        os._exit(int(HOW[4:]))
    elif HOW == "sleep":
        time.sleep(1)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"imported"]
