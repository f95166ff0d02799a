"""Forks while another thread of the request waits for the event loop,
reading a streamed wsgi.input (on a pool; inline that read is refused).
The child returns from the application, which must end it; with
"?read" it reads wsgi.input first, which must fail.  Answers how
the child ended ("exit N", or "hung" if it still ran after 3 s) and how
many bytes the other thread read.  Once the child ended, it creates the
file ?ended=PATH, if given."""

import os
import threading
import time
from urllib.parse import parse_qs


def application(environ, start_response):
    got = []
    q = parse_qs(environ["QUERY_STRING"], keep_blank_values=True)
    inp = environ["wsgi.input"]

    def read():
        try:
            got.append(len(inp.read()))
        except RuntimeError:
            got.append(-1)

    t = threading.Thread(target=read)
    t.start()
    time.sleep(0.3)

    pid = os.fork()
    if pid == 0:
        if "read" in q:
            try:
                inp.read()
            except (OSError, RuntimeError):
                pass
        return [b"child"]

    how = "hung"
    for _ in range(300):
        rpid, status = os.waitpid(pid, os.WNOHANG)
        if rpid:
            how = "exit %d" % os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    if "ended" in q:
        with open(q["ended"][0], "w"):
            pass

    t.join()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{how} {got[0]}".encode()]
