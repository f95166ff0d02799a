"""Deliberately invalid WSGI output (tests/test_errors.py).

Not wrapped in wsgiref.validate: the validator would raise before the
server sees the invalid output, which is what these cases exercise.
Dispatched on PATH_INFO; /ok is a valid response.
"""

TEXT = [("Content-Type", "text/plain")]

HOP_BY_HOP = {
    "connection": ("Connection", "close"),
    "keep-alive": ("Keep-Alive", "timeout=5"),
    "transfer-encoding": ("Transfer-Encoding", "chunked"),
    "upgrade": ("Upgrade", "websocket"),
    "te": ("TE", "trailers"),
    "trailer": ("Trailer", "X-Foo"),
    "proxy-authenticate": ("Proxy-Authenticate", "Basic"),
    "proxy-authorization": ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
}


def simple(status, headers, body=(b"should not be sent",)):
    def app(environ, start_response):
        start_response(status, headers)
        return list(body)
    return app


def returns_none(environ, start_response):
    start_response("200 OK", TEXT)
    return None


def start_twice(environ, start_response):
    start_response("200 OK", TEXT)
    start_response("201 Created", TEXT)
    return [b"should not be sent"]


def yield_before_start(environ, start_response):
    def gen():
        yield b"too early"
        start_response("200 OK", TEXT)
        yield b"should not be sent"
    return gen()


def str_chunk_first(environ, start_response):
    start_response("200 OK", TEXT)
    return ["a str, not bytes"]


def str_chunk_later(environ, start_response):
    start_response("200 OK", TEXT)

    def gen():
        yield b"good bytes;"
        yield "then a str"
        yield b"NOT-REACHED"
    return gen()


def ok(environ, start_response):
    start_response("200 OK", TEXT)
    return [b"ok"]


ROUTES = {
    "/status_no_reason": simple("200", TEXT),
    "/status_abc": simple("abc OK", TEXT),
    "/status_int": simple(200, TEXT),
    "/status_short_code": simple("20 OK", TEXT),
    "/header_name_bytes": simple("200 OK", [(b"X-Bad", "v")] + TEXT),
    "/header_value_bytes": simple("200 OK", [("X-Bad", b"v")] + TEXT),
    "/header_value_int": simple("200 OK", [("X-Bad", 1)] + TEXT),
    "/header_value_cr": simple("200 OK", [("X-Bad", "a\rInjected: 1")] + TEXT),
    "/header_value_lf": simple("200 OK", [("X-Bad", "a\nInjected: 1")] + TEXT),
    "/header_not_tuple": simple("200 OK", ["X-Bad: v"] + TEXT),
    "/headers_not_list": simple("200 OK", "X-Bad: v"),
    "/returns_none": returns_none,
    "/start_twice": start_twice,
    "/yield_before_start": yield_before_start,
    "/str_chunk_first": str_chunk_first,
    "/str_chunk_later": str_chunk_later,
    "/ok": ok,
}

for _key, _header in HOP_BY_HOP.items():
    ROUTES["/hop_" + _key] = simple("200 OK", [_header] + TEXT)


def application(environ, start_response):
    return ROUTES[environ["PATH_INFO"]](environ, start_response)
