"""The same str objects as a header value, then as a header name, across
requests: what was valid as a value is not thereby a valid name.

/value?n=N answers with X-Test: <a constant>; /name?n=N uses that same
constant as a header name (not a token: it has a "/" and a space);
/crlf has a value with CR LF.  Not behind wsgiref.validate, which would
refuse those before the server sees them."""

CONSTANT = "text/plain; a b"
CRLF = "ok\r\nInjected: 1"


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/value":
        headers = [("Content-Type", "text/plain"), ("X-Test", CONSTANT)]
    elif path == "/name":
        headers = [(CONSTANT, "x")]
    elif path == "/crlf":
        headers = [("X-Test", CRLF)]
    else:
        headers = [("Content-Type", "text/plain")]
    start_response("200 OK", headers)
    return [b"body"]

