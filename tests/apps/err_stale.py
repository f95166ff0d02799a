"""Request-scoped objects used after their request (tests/test_errors.py).

GET /store keeps environ['wsgi.input'], start_response and the write
callable in a module global.  GET /use calls each of them in a later
request and reports "name: ExceptionType: message" per line.

Not behind wsgiref.validate: the validator would hand the app its own
wrappers instead of the server's objects.
"""

KEPT = {}


def application(environ, start_response):
    if environ["PATH_INFO"] == "/store":
        KEPT["input"] = environ["wsgi.input"]
        KEPT["start_response"] = start_response
        KEPT["write"] = start_response("200 OK",
                                       [("Content-Type", "text/plain")])
        return [b"stored"]

    calls = [
        ("input.read", lambda: KEPT["input"].read()),
        ("input.readline", lambda: KEPT["input"].readline()),
        ("start_response",
         lambda: KEPT["start_response"]("200 OK", [("X-Stale", "1")])),
        ("write", lambda: KEPT["write"](b"stale write")),
    ]
    lines = []
    for name, call in calls:
        try:
            call()
        except BaseException as e:  # noqa: B902 - report whatever it is
            lines.append("%s: %s: %s" % (name, type(e).__name__, e))
        else:
            lines.append("%s: no exception" % name)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["\n".join(lines).encode()]
