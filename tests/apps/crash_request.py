"""Kills its worker when asked: /segv reads address 0, /kill sends SIGSEGV
to itself, /sigkill SIGKILL, /exitN calls os._exit(N), /overflow overflows
the C stack, /late reads address 0 after 1 s.  With a query string of
seconds, the step sleeps that long first.  Any other path answers the
pid."""

import os
import signal
import sys
import time


def application(environ, start_response):
    how = environ["PATH_INFO"].rsplit("/", 1)[-1]
    try:
        time.sleep(float(environ["QUERY_STRING"]))
    except ValueError:
        pass
    if how == "late":
        time.sleep(1)
        how = "segv"
    if how == "segv":
        import ctypes
        ctypes.string_at(0)
    elif how == "kill":
        # delivered to any thread: this one waits for it
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(5)
    elif how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(5)
    elif how == "overflow":
        # repr() recurses in C, each level within the recursion limit
        sys.setrecursionlimit(10 ** 8)
        nested = []
        for _ in range(10 ** 6):
            nested = [nested]
        repr(nested)
    elif how.startswith("exit"):
        os._exit(int(how[4:]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
