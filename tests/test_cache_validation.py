"""Conditional GET: nginx's validation of If-None-Match, If-Modified-Since,
If-Unmodified-Since and If-Match against the application's ETag and
Last-Modified (wsgi_cache_validation).

App: tests/apps/feat_app.py.
"""

import pytest

from harness import Parsed, exchange, get, hdrs, req, url


KEEPALIVE = "keepalive_timeout 30s;"


LM = "Wed, 21 Oct 2015 07:28:00 GMT"
EARLIER = "Tue, 20 Oct 2015 07:28:00 GMT"
LATER = "Thu, 22 Oct 2015 07:28:00 GMT"
ETAG = '"abc123"'
COND_BODY = b"conditional body"


def cond_server(nginx):
    app = "wsgi_pass {apps}/feat_app.py;"
    return nginx(server=(
        KEEPALIVE + "\n"
        f"location / {{ {app} }}\n"
        f"location /before/ {{ {app} if_modified_since before; }}\n"
        f"location /noval/ {{ {app} wsgi_cache_validation off; }}\n"))


def cond_url(prefix="/", **extra):
    return url(prefix + "cond", etag=ETAG, lm=LM, **extra)


def assert_304(srv, path, extra):
    # the 304 carries no body: a pipelined request's answer follows it
    data, eof = exchange(srv, req(path, close=False, extra=extra)
                         + req("/second"))
    p = Parsed(data)
    assert p.code == 304, p
    assert p.all("Transfer-Encoding") == [] and \
        p.all("Content-Length") == [], p
    assert p.all("ETag") == [ETAG], p
    assert p.rest.startswith(b"HTTP/1.1 200"), f"304 with a body: {p!r}"
    second = Parsed(p.rest)
    assert second.body == b"second" and second.rest == b"", second
    return p


def assert_200(p):
    assert p.code == 200, p
    assert p.body == COND_BODY, p


@pytest.mark.parametrize("inm", [ETAG, '"other", ' + ETAG, "*"],
                         ids=["same", "list", "star"])
def test_if_none_match_304(nginx, inm):
    srv = cond_server(nginx)
    assert_304(srv, cond_url(), hdrs(If_None_Match=inm))


def test_if_none_match_other_etag_200(nginx):
    srv = cond_server(nginx)
    assert_200(get(srv, cond_url(), extra=hdrs(If_None_Match='"other"')))


def test_if_modified_since(nginx):
    srv = cond_server(nginx)
    assert_304(srv, cond_url(), hdrs(If_Modified_Since=LM))
    assert_200(get(srv, cond_url(), extra=hdrs(If_Modified_Since=EARLIER)))
    # nginx's default "if_modified_since exact" wants the same time ...
    assert_200(get(srv, cond_url(), extra=hdrs(If_Modified_Since=LATER)))
    # ... "before" takes a later one too
    assert_304(srv, cond_url("/before/"), hdrs(If_Modified_Since=LATER))
    assert_304(srv, cond_url("/before/"), hdrs(If_Modified_Since=LM))
    assert_200(get(srv, cond_url("/before/"),
                   extra=hdrs(If_Modified_Since=EARLIER)))


def test_if_unmodified_since(nginx):
    srv = cond_server(nginx)
    p = get(srv, cond_url(), extra=hdrs(If_Unmodified_Since=EARLIER))
    assert p.code == 412, p
    assert COND_BODY not in p.body
    assert_200(get(srv, cond_url(), extra=hdrs(If_Unmodified_Since=LM)))
    assert_200(get(srv, cond_url(), extra=hdrs(If_Unmodified_Since=LATER)))


def test_if_match(nginx):
    srv = cond_server(nginx)
    p = get(srv, cond_url(), extra=hdrs(If_Match='"other"'))
    assert p.code == 412, p
    assert COND_BODY not in p.body
    assert_200(get(srv, cond_url(), extra=hdrs(If_Match=ETAG)))


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "PATCH"])
@pytest.mark.parametrize("header", [
    hdrs(If_Match='"other"'),
    hdrs(If_Unmodified_Since=EARLIER),
    hdrs(If_None_Match=ETAG),
], ids=["im", "ius", "inm"])
def test_cache_validation_only_for_get_and_head(nginx, method, header):
    """A method that changes something has run when its response comes:
    its preconditions are the application's (a CalDAV client's DELETE
    with If-Match got a 412 for an event that was deleted)."""
    srv = cond_server(nginx)
    p = get(srv, cond_url(), method=method,
            extra=header + "Content-Length: 0\r\n")
    assert_200(p)
    assert p.all("ETag") == [ETAG], p


@pytest.mark.parametrize("header", [
    hdrs(If_None_Match=ETAG),
    hdrs(If_Modified_Since=LM),
    hdrs(If_Unmodified_Since=EARLIER),
    hdrs(If_Match='"other"'),
], ids=["inm", "ims", "ius", "im"])
def test_cache_validation_off(nginx, header):
    srv = cond_server(nginx)
    p = get(srv, cond_url("/noval/"), extra=header)
    assert_200(p)
    assert p.all("ETag") == [ETAG], p


def test_custom_reason_with_validators(nginx):
    srv = cond_server(nginx)
    path = cond_url(reason="Everything Fine")
    data, eof = exchange(srv, req(path))
    assert data.startswith(b"HTTP/1.1 200 Everything Fine\r\n"), data[:200]
    assert_200(Parsed(data))
    p = assert_304(srv, path, hdrs(If_None_Match=ETAG))
    assert p.status_line == "HTTP/1.1 304 Not Modified", p
