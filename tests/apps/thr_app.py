"""Applications for tests/test_threads.py, one callable each:

    wsgi_pass {apps}/thr_app.py NAME;

Every callable runs behind wsgiref.validate.  Parameters come from the
query string; ?side=PATH names a side file that the application appends
lines to, so that the test can see inside it.  The module's globals are
shared by all the callables of one worker (one script, one module).

hello        "hello <pid> <wsgi.multithread>\\n"
write_big    write() ?n= chunks of ?size= bytes (chunk_bytes()), Content-Length
             set; side: "wrote I" after each write(), "returned"
stream       generator: ?n= chunks, ?delay= seconds between them; side:
             "chunk I <client_connected()>" per chunk, "close" from finally
watch        sleeps in a loop until ngx.client_connected() is False or
             ?limit= seconds passed; side: "start <connected>", then
             "gone <seconds>" or "timeout", then "returned"
produce      fast generator of ?n= chunks of ?size= bytes (chunk_bytes()),
             Content-Length set; counts the chunks it yielded in
             PRODUCED[?key=] (no file I/O: every next() stays fast)
progress     {"produced": PRODUCED[?key=]} as JSON
printer      print("thr-print-out", ?token=) to sys.stdout and
             print("thr-print-err", ?token=) to sys.stderr
policy       "policy <os.sched_getscheduler(0)>": the scheduling policy of
             the thread that runs it
busy         ?ms= milliseconds of pure Python on the CPU (?ms=0: sleeps
             ?nap= milliseconds instead), then "thread <its ident>"
meet         waits until ?n= requests with the same ?key= are in it at
             once, or ?timeout= seconds (default 5) passed: "met <most in
             it at once> thread <ident>", or "alone <most...> thread ...";
             writes its pid to ?marker= (a new file) when it is in
compute      the same, then "policy <before> <after> seen <policies>": its
             thread's scheduling policy before it started, after it ended,
             and every policy it had (looked at once per ms of CPU time)
"""

import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs
from wsgiref.validate import validator

PRODUCED = {}
MEETING = threading.Condition()
INSIDE = {}                         # key -> requests in meet now
PEAK = {}                           # key -> most of them at once
MET = set()                         # keys whose ?n= were in at once


def params(environ):
    return {k: v[0] for k, v in
            parse_qs(environ.get("QUERY_STRING", "")).items()}


def note(path, line):
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def chunk_bytes(i, size):
    """Chunk number i: its number, then a letter that depends on it."""
    head = b"%08d|" % i
    return head + bytes([65 + i % 26]) * (size - len(head))


def _hello(environ, start_response):
    body = ("hello %d %s\n" % (os.getpid(),
                               environ["wsgi.multithread"])).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _write_big(environ, start_response):
    p = params(environ)
    n = int(p.get("n", "256"))
    size = int(p.get("size", str(256 * 1024)))
    side = p.get("side")
    write = start_response("200 OK", [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(n * size))])
    for i in range(n):
        write(chunk_bytes(i, size))
        note(side, "wrote %d" % i)
    note(side, "returned")
    return []


def _stream(environ, start_response):
    p = params(environ)
    n = int(p.get("n", "200"))
    delay = float(p.get("delay", "0.05"))
    side = p.get("side")
    connected = environ["ngx.client_connected"]
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        try:
            for i in range(n):
                if i:
                    time.sleep(delay)
                note(side, "chunk %d %s" % (i, connected()))
                yield b"chunk %d\n" % i
        finally:
            note(side, "close")

    return gen()


def _watch(environ, start_response):
    p = params(environ)
    limit = float(p.get("limit", "5"))
    side = p.get("side")
    connected = environ["ngx.client_connected"]
    note(side, "start %s" % connected())
    t0 = time.monotonic()
    while True:
        if not connected():
            note(side, "gone %.3f" % (time.monotonic() - t0))
            break
        if time.monotonic() - t0 > limit:
            note(side, "timeout")
            break
        time.sleep(0.02)
    body = b"watched\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    note(side, "returned")
    return [body]


def _produce(environ, start_response):
    p = params(environ)
    key = p["key"]
    n = int(p.get("n", "4096"))
    size = int(p.get("size", "4096"))
    PRODUCED[key] = 0
    start_response("200 OK", [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(n * size))])

    def gen():
        for i in range(n):
            PRODUCED[key] = i + 1
            yield chunk_bytes(i, size)

    return gen()


def _progress(environ, start_response):
    key = params(environ)["key"]
    body = json.dumps({"produced": PRODUCED.get(key, 0)}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _printer(environ, start_response):
    token = params(environ)["token"]
    print("thr-print-out", token)
    print("thr-print-err", token, file=sys.stderr)
    body = b"printed\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _text(start_response, body):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _policy(environ, start_response):
    return _text(start_response, b"policy %d" % os.sched_getscheduler(0))


def _spend(environ, seen=None):
    """Spends ?ms= of CPU time, or sleeps ?nap= ms; adds the thread's
    scheduling policy to the set seen, once a millisecond of CPU time."""
    p = params(environ)
    ms = int(p.get("ms", "0"))
    if ms:
        now = time.thread_time()
        end = now + ms / 1000
        look = now
        while now < end:
            if seen is not None and now >= look:
                seen.add(os.sched_getscheduler(0))
                look = now + 0.001
            now = time.thread_time()
    else:
        time.sleep(int(p.get("nap", "0")) / 1000)


def _busy(environ, start_response):
    _spend(environ)
    return _text(start_response, b"thread %d" % threading.get_ident())


def _meet(environ, start_response):
    p = params(environ)
    key, n = p.get("key", ""), int(p.get("n", "2"))
    if p.get("marker"):
        with open(p["marker"], "w") as f:
            f.write(str(os.getpid()))
    with MEETING:
        INSIDE[key] = INSIDE.get(key, 0) + 1
        PEAK[key] = max(PEAK.get(key, 0), INSIDE[key])
        if INSIDE[key] >= n:
            MET.add(key)
            MEETING.notify_all()
        met = MEETING.wait_for(lambda: key in MET,
                               float(p.get("timeout", "5")))
        INSIDE[key] -= 1
        peak = PEAK[key]
    return _text(start_response, b"%s %d thread %d" % (
        b"met" if met else b"alone", peak, threading.get_ident()))


def _compute(environ, start_response):
    before = os.sched_getscheduler(0)
    seen = {before}
    _spend(environ, seen)
    after = os.sched_getscheduler(0)
    seen.add(after)
    return _text(start_response, b"policy %d %d seen %s" % (
        before, after, " ".join(map(str, sorted(seen))).encode()))


hello = validator(_hello)
write_big = validator(_write_big)
stream = validator(_stream)
watch = validator(_watch)
produce = validator(_produce)
progress = validator(_progress)
printer = validator(_printer)
policy = validator(_policy)
busy = validator(_busy)
compute = validator(_compute)
meet = validator(_meet)
