"""wsgi.input and write() used from threads the application starts.

?how=both    the request's thread and another one read wsgi.input at once
?how=other   another thread reads it, the request's thread waits for it
?how=write   another thread calls write() (status and headers sent first)
?how=mixed   another thread calls write() 20 times while the request's
             thread reads wsgi.input
?how=late&token=T[&side=F]  another thread tries write() and wsgi.input
             0.3 s after the application returned a generator of 8 MiB,
             then writes "done" to the file F
?how=result&token=T  what that thread got: JSON ["write ...", "read ..."]

Reads are of ?n= bytes (1024).  Answers JSON {"main": bytes read by the
request's thread, "other": by the other thread, "errors": ["who Type:
message", ...]}; ?how=write answers "main" after the other's result.
"""

import json
import threading
import time
from urllib.parse import parse_qs

LATE = {}


def late(token, write, inp, side):
    time.sleep(0.3)
    got = []
    for name, use in (("write", lambda: write(b"late")),
                      ("read", lambda: inp.read(10))):
        try:
            use()
            got.append(name + " ok")
        except Exception as e:
            got.append("%s %s: %s" % (name, type(e).__name__, e))
    LATE[token] = got
    if side:
        with open(side, "w") as f:
            f.write("done")


def application(environ, start_response):
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    how = qs.get("how", ["both"])[0]
    n = int(qs.get("n", ["1024"])[0])
    inp = environ["wsgi.input"]
    res = {"main": 0, "other": 0, "errors": []}

    def reader(who):
        try:
            while True:
                block = inp.read(n)
                if not block:
                    break
                res[who] += len(block)
        except Exception as e:
            res["errors"].append("%s %s: %s" % (who, type(e).__name__, e))

    if how == "late":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        threading.Thread(target=late,
                         args=(qs["token"][0], write, inp,
                               qs.get("side", [None])[0])).start()

        def gen():
            yield b"x" * (8 << 20)
            yield b"end"

        return gen()

    if how == "result":
        token = qs["token"][0]
        deadline = time.monotonic() + 5
        while token not in LATE and time.monotonic() < deadline:
            time.sleep(0.01)
        body = json.dumps(LATE.pop(token, None)).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    if how in ("write", "mixed"):
        write = start_response("200 OK", [("Content-Type", "text/plain")])

        def writer():
            try:
                for _ in range(20 if how == "mixed" else 1):
                    write(b"other\n")
            except Exception as e:
                res["errors"].append("other %s: %s" % (type(e).__name__, e))

        t = threading.Thread(target=writer)
        t.start()
        if how == "mixed":
            reader("main")
        t.join()
        return [json.dumps(res).encode()]

    t = threading.Thread(target=reader, args=("other",))
    t.start()
    if how == "both":
        reader("main")
    t.join()
    if how == "other":
        # the body is still there for the request's own thread
        reader("main")

    body = json.dumps(res).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
