"""os.fork() inside the application.

?child=return   the child returns from the application, as the parent does
?child=raise    the child raises from the application
?child=iterate  the child returns a generator that yields and returns
?child=exit     the child leaves with os._exit(0); the parent waits for it
?child=write    the child calls write(): os._exit(3) if it raises OSError,
                else returns; the parent waits for it

The parent answers "parent CHILD_PID [STATUS]"; a child that gets as far
as answering says "child".  A child that returns, raises or iterates
does so once the test created ?go=PATH (at most 10 s), or after 0.3 s
without it: the parent's answer comes first.
"""

import os
import time
from urllib.parse import parse_qs


def answer(start_response, body):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    how = qs.get("child", ["return"])[0]

    pid = os.fork()

    if pid == 0:
        if how == "exit":
            os._exit(0)
        if how == "write":
            write = start_response("200 OK", [("Content-Type", "text/plain")])
            try:
                write(b"child")
            except OSError:
                os._exit(3)
            return []
        # the parent answers first, so that a child that went on could
        # only add to (or spoil) the response the client reads
        go = qs.get("go", [None])[0]
        if go:
            deadline = time.monotonic() + 10
            while not os.path.exists(go) and time.monotonic() < deadline:
                time.sleep(0.005)
        else:
            time.sleep(0.3)
        if how == "raise":
            raise RuntimeError("raised in the child")
        if how == "iterate":
            def gen():
                yield b"chi"
                yield b"ld"
            start_response("200 OK", [("Content-Type", "text/plain")])
            return gen()
        return answer(start_response, b"child")

    body = "parent %d" % pid
    if how in ("exit", "write"):
        _, status = os.waitpid(pid, 0)
        body += " %d" % os.waitstatus_to_exitcode(status)
    return answer(start_response, body.encode())
