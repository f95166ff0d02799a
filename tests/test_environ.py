"""The WSGI environ (SPEC.md "environ"), seen through tests/apps/env_app.py."""

import concurrent.futures
import http.client
import json
import os
import shutil
import ssl
import subprocess

import pytest

from harness import Parsed, free_port, inline_mode

ENV = "wsgi_pass {apps}/env_app.py;"

# wsgi.multithread is False in the default (inline) mode; a run with other
# http-level globals (e.g. a thread pool) may legitimately differ.
GLOBALS_SET = bool(os.environ.get("TEST_NGINX_GLOBALS_HTTP", "").strip())


def env_server(nginx, location="location /", extra="", **kw):
    return nginx(server=f"{location} {{ {ENV} {extra} }}", **kw)


def raw_env(srv, head_lines, body=b""):
    """Send a raw request (list of header lines after the request line
    included), return the environ dict parsed from the JSON answer."""
    req = "\r\n".join(head_lines).encode("latin-1") + b"\r\n\r\n" + body
    return raw_env_bytes(srv, req)


def raw_env_bytes(srv, req):
    p = Parsed(srv.raw(req))
    assert p.code == 200, f"{p!r}\n{srv.logs_tail()}"
    assert p.framing == "length" and p.complete, p
    return json.loads(p.body)


# -- CGI variables -------------------------------------------------------------

def test_basic_variables(nginx):
    srv = env_server(nginx)
    e = srv.get_json("/path/x?a=1&b=2")
    assert e["REQUEST_METHOD"] == "GET"
    assert e["SCRIPT_NAME"] == ""
    assert e["PATH_INFO"] == "/path/x"
    assert e["QUERY_STRING"] == "a=1&b=2"
    assert e["SERVER_NAME"] == "localhost"
    assert e["SERVER_PORT"] == str(srv.port)
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert e["REQUEST_URI"] == "/path/x?a=1&b=2"
    assert e["HTTP_HOST"] == f"127.0.0.1:{srv.port}"
    assert "HTTPS" not in e
    assert e["wsgi.url_scheme"] == "http"
    assert "CONTENT_TYPE" not in e
    assert "CONTENT_LENGTH" not in e
    assert "HTTP_CONTENT_TYPE" not in e
    assert "HTTP_CONTENT_LENGTH" not in e


def test_all_cgi_values_are_native_str(nginx):
    srv = env_server(nginx)
    e = srv.get_json("/x?y=1", headers={"X-Thing": "v", "Cookie": "a=b"})
    non_dotted = {k: v for k, v in e.items()
                  if "." not in k and not k.startswith("_")}
    assert len(non_dotted) >= 10
    bad = {k: v for k, v in non_dotted.items() if not isinstance(v, str)}
    assert not bad, bad


def test_query_string_empty_when_none(nginx):
    srv = env_server(nginx)
    assert srv.get_json("/x")["QUERY_STRING"] == ""
    assert srv.get_json("/x?")["QUERY_STRING"] == ""


def test_query_string_is_raw(nginx):
    srv = env_server(nginx)
    e = srv.get_json("/x?q=%20a+b&c=%C3%A9&d")
    assert e["QUERY_STRING"] == "q=%20a+b&c=%C3%A9&d"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH",
                                    "OPTIONS", "PROPFIND"])
def test_request_method(nginx, method):
    srv = env_server(nginx)
    r = srv.request(method, "/m")
    assert r.status == 200, srv.logs_tail()
    assert r.json()["REQUEST_METHOD"] == method


def test_content_type_and_length_for_body(nginx):
    srv = env_server(nginx)
    e = srv.post("/p", b"hello", headers={"Content-Type": "text/x-test"}).json()
    assert e["CONTENT_TYPE"] == "text/x-test"
    assert e["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in e
    assert "HTTP_CONTENT_LENGTH" not in e


def test_content_type_without_body(nginx):
    srv = env_server(nginx)
    e = srv.get_json("/p", headers={"Content-Type": "application/x-empty"})
    assert e["CONTENT_TYPE"] == "application/x-empty"
    assert "CONTENT_LENGTH" not in e
    assert "HTTP_CONTENT_TYPE" not in e


def test_server_protocol_http10(nginx):
    srv = env_server(nginx)
    e = raw_env(srv, ["GET /ten HTTP/1.0", "Host: h10"])
    assert e["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert e["PATH_INFO"] == "/ten"
    assert e["HTTP_HOST"] == "h10"


def test_remote_port_is_client_port(nginx):
    srv = env_server(nginx)
    conn = srv.connection()
    conn.connect()
    local_port = conn.sock.getsockname()[1]
    conn.request("GET", "/rp")
    r = conn.getresponse()
    e = json.loads(r.read())
    conn.close()
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert e["REMOTE_PORT"] == str(local_port)


def test_server_port_is_local_port(nginx):
    srv = env_server(nginx)
    # Host header names another port: SERVER_PORT is still the local one
    e = srv.get_json("/", headers={"Host": "example.test:1234"})
    assert e["SERVER_PORT"] == str(srv.port)
    assert e["HTTP_HOST"] == "example.test:1234"


# -- SERVER_NAME -----------------------------------------------------------

def test_server_name_from_config(nginx):
    srv = env_server(nginx)
    e = srv.get_json("/", headers={"Host": "other.test"})
    assert e["SERVER_NAME"] == "localhost"


def test_server_name_is_primary_name(nginx):
    srv = env_server(nginx, server_name="primary.test alias.test")
    e = srv.get_json("/", headers={"Host": "alias.test"})
    assert e["SERVER_NAME"] == "primary.test"


def test_server_name_empty_uses_host(nginx):
    srv = env_server(nginx, server_name='""')
    e = srv.get_json("/", headers={"Host": "myhost.test"})
    assert e["SERVER_NAME"] == "myhost.test"


# -- SCRIPT_NAME / PATH_INFO -----------------------------------------------

@pytest.mark.parametrize("location,path,script_name,path_info", [
    ("location /app/", "/app/x", "/app", "/x"),
    ("location /app/", "/app/", "/app", "/"),
    ("location /app/", "/app/a/b/c", "/app", "/a/b/c"),
    ("location /", "/a/b", "", "/a/b"),
    ("location /", "/", "", "/"),
    ("location = /exact", "/exact", "/exact", ""),
    ("location ~ ^/re/", "/re/x", "", "/re/x"),
    ("location ~* \\.wsgi$", "/dir/f.wsgi", "", "/dir/f.wsgi"),
])
def test_script_name_location_forms(nginx, location, path, script_name,
                                    path_info):
    srv = env_server(nginx, location=location)
    e = srv.get_json(path)
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == (script_name, path_info)


@pytest.mark.parametrize("path,path_info", [
    ("/mnt/x", "/x"),
    ("/mnt/a/b", "/a/b"),
    ("/mnt", ""),
    ("/other/y", "/other/y"),
])
def test_script_name_from_wsgi_var(nginx, path, path_info):
    srv = env_server(nginx, extra="wsgi_var SCRIPT_NAME /mnt;")
    e = srv.get_json(path)
    assert e["SCRIPT_NAME"] == "/mnt"
    assert e["PATH_INFO"] == path_info


def test_script_name_from_wsgi_var_in_prefix_location(nginx):
    srv = env_server(nginx, location="location /app/",
                     extra="wsgi_var SCRIPT_NAME /app/sub;")
    e = srv.get_json("/app/sub/page")
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("/app/sub", "/page")


def test_path_info_is_decoded(nginx):
    srv = env_server(nginx)
    e = srv.get_json("/a%41b/%20c")
    assert e["PATH_INFO"] == "/aAb/ c"
    assert e["REQUEST_URI"] == "/a%41b/%20c"


def test_path_info_utf8_round_trip(nginx):
    srv = env_server(nginx)
    e = srv.get_json("/caf%C3%A9/%E2%82%AC?x=%C3%A9")
    pi = e["PATH_INFO"]
    assert pi.encode("latin-1").decode("utf-8") == "/café/€"
    assert e["REQUEST_URI"] == "/caf%C3%A9/%E2%82%AC?x=%C3%A9"
    assert e["QUERY_STRING"] == "x=%C3%A9"


def test_path_info_utf8_under_script_name(nginx):
    srv = env_server(nginx, location="location /app/")
    e = srv.get_json("/app/%C3%BCber")
    assert e["SCRIPT_NAME"] == "/app"
    assert e["PATH_INFO"].encode("latin-1").decode("utf-8") == "/über"


def test_request_uri_is_raw(nginx):
    srv = env_server(nginx)
    e = srv.get_json("/p%41th//double/./dot?q=%20x&y")
    assert e["REQUEST_URI"] == "/p%41th//double/./dot?q=%20x&y"
    assert e["QUERY_STRING"] == "q=%20x&y"


# -- HTTP_* headers ------------------------------------------------------------

def test_http_headers(nginx):
    srv = env_server(nginx)
    e = raw_env(srv, [
        "GET / HTTP/1.1", "Host: hh.test", "X-Custom-Header: custom value",
        "x-lower-case: lc", "X-A1-B2: digits", "User-Agent: tester/1.0",
        "Accept: */*", "Connection: close"])
    assert e["HTTP_HOST"] == "hh.test"
    assert e["HTTP_X_CUSTOM_HEADER"] == "custom value"
    assert e["HTTP_X_LOWER_CASE"] == "lc"
    assert e["HTTP_X_A1_B2"] == "digits"
    assert e["HTTP_USER_AGENT"] == "tester/1.0"
    assert e["HTTP_ACCEPT"] == "*/*"


def test_repeated_headers_joined_with_comma(nginx):
    srv = env_server(nginx)
    e = raw_env(srv, ["GET / HTTP/1.1", "Host: h", "X-Multi: a",
                      "X-Other: o", "x-multi: b", "X-MULTI: c",
                      "Connection: close"])
    assert e["HTTP_X_MULTI"] == "a, b, c"
    assert e["HTTP_X_OTHER"] == "o"


def test_cookies_joined_with_semicolon(nginx):
    srv = env_server(nginx)
    e = raw_env(srv, ["GET / HTTP/1.1", "Host: h", "Cookie: a=1",
                      "Cookie: b=2; c=3", "Connection: close"])
    assert e["HTTP_COOKIE"] == "a=1; b=2; c=3"


def test_single_cookie(nginx):
    srv = env_server(nginx)
    e = srv.get_json("/", headers={"Cookie": "sid=abc; x=y"})
    assert e["HTTP_COOKIE"] == "sid=abc; x=y"


def test_underscore_header_dropped_default(nginx):
    srv = env_server(nginx)
    e = raw_env(srv, ["GET / HTTP/1.1", "Host: h", "X_Under: evil",
                      "Connection: close"])
    assert "HTTP_X_UNDER" not in e


def test_underscore_header_dropped_with_underscores_in_headers(nginx):
    # nginx itself keeps such headers here; the module must drop them
    srv = nginx(server=f"underscores_in_headers on; location / {{ {ENV} }}")
    e = raw_env(srv, ["GET / HTTP/1.1", "Host: h", "X_Under: evil",
                      "Connection: close"])
    assert "HTTP_X_UNDER" not in e
    e = raw_env(srv, ["GET / HTTP/1.1", "Host: h", "X_Under: evil",
                      "X-Under: good", "Connection: close"])
    assert e["HTTP_X_UNDER"] == "good"
    e = raw_env(srv, ["GET / HTTP/1.1", "Host: h", "X-Under: good",
                      "X_Under: evil", "Connection: close"])
    assert e["HTTP_X_UNDER"] == "good"


def test_header_value_bytes_are_latin1(nginx):
    srv = env_server(nginx)
    e = raw_env_bytes(srv, b"GET / HTTP/1.1\r\nHost: h\r\n"
                           b"X-Utf8: caf\xc3\xa9\r\nConnection: close\r\n\r\n")
    assert e["HTTP_X_UTF8"].encode("latin-1") == b"caf\xc3\xa9"


# -- wsgi.* ------------------------------------------------------------------

def test_wsgi_entries(nginx):
    srv = env_server(nginx)
    e = srv.get_json("/")
    assert e["wsgi.version"]["type"] == "tuple"
    assert e["wsgi.version"]["value"] == [1, 0]
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.multithread"]["type"] == "bool"
    assert e["wsgi.multithread"]["repr"] == str(not inline_mode())
    assert e["wsgi.multiprocess"]["repr"] == "False"
    assert e["wsgi.run_once"]["repr"] == "False"
    assert e["wsgi.input_terminated"]["repr"] == "True"
    assert e["wsgi.file_wrapper"]["callable"] is True
    inp = e["wsgi.input"]
    assert {"read", "readline", "readlines"} <= set(inp["attrs"])
    assert inp["iterable"] is True
    assert {"write", "writelines", "flush"} <= set(e["wsgi.errors"]["attrs"])


def test_wsgi_multiprocess_with_two_workers(nginx):
    srv = env_server(nginx, workers=2)
    e = srv.get_json("/")
    assert e["wsgi.multiprocess"]["repr"] == "True"
    assert e["wsgi.run_once"]["repr"] == "False"
    assert e["_pid"] in srv.worker_pids()


def test_environ_is_fresh_per_request(nginx):
    srv = env_server(nginx)
    conn = srv.connection()
    conn.request("GET", "/one?a=1", headers={"X-First": "1"})
    e1 = json.loads(conn.getresponse().read())
    conn.request("GET", "/two")
    e2 = json.loads(conn.getresponse().read())
    conn.close()
    assert e1["PATH_INFO"] == "/one" and e1["HTTP_X_FIRST"] == "1"
    assert e2["PATH_INFO"] == "/two"
    assert e2["QUERY_STRING"] == ""
    assert "HTTP_X_FIRST" not in e2


def test_application_group_interleaved(nginx):
    """The main interpreter and two groups, requested in turn on four
    connections at once: every request runs in its location's
    interpreter, also on a pool thread that switches between them."""
    srv = nginx(server=f"""
        location /main {{ {ENV} wsgi_use_main_interpreter on; }}
        location /a {{ {ENV} wsgi_application_group a; }}
        location /b {{ {ENV} wsgi_application_group b; }}""")
    groups = {"/main": "", "/a": "a", "/b": "b"}

    def walk(k):
        conn = srv.connection()
        seen = []
        for i in range(12):
            path = list(groups)[(i + k) % 3]
            conn.request("GET", path + "?nap=2")
            e = json.loads(conn.getresponse().read())
            seen.append((path, e["mod_wsgi.application_group"]))
        conn.close()
        return seen

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        for seen in ex.map(walk, range(4)):
            assert seen == [(p, groups[p]) for p, _ in seen]


# -- HTTPS -------------------------------------------------------------------

@pytest.fixture
def cert(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("no openssl binary")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    p = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", str(key), "-out", str(crt), "-days", "2",
         "-subj", "/CN=localhost"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert p.returncode == 0, p.stdout
    return key, crt


def test_https_under_tls(nginx, cert, tmp_path):
    key, crt = cert
    # the harness listens on one plain port; add a TLS listener on a
    # second free port
    tls_port = free_port()
    srv = nginx(server=f"""
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        location / {{ wsgi_pass {{apps}}/env_app.py unchanged; }}
    """, prefix=tmp_path / "p")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", tls_port, context=ctx,
                                       timeout=10)
    conn.request("GET", "/s")
    r = conn.getresponse()
    assert r.status == 200
    e = json.loads(r.read())
    conn.close()
    assert e["HTTPS"] == "on"
    assert e["wsgi.url_scheme"] == "https"
    assert e["SERVER_PORT"] == str(tls_port)
    plain = srv.get_json("/s")
    assert "HTTPS" not in plain
    assert plain["wsgi.url_scheme"] == "http"
    # in turns, on the same location
    for _ in range(2):
        conn = http.client.HTTPSConnection("127.0.0.1", tls_port,
                                           context=ctx, timeout=10)
        conn.request("GET", "/t")
        e = json.loads(conn.getresponse().read())
        conn.close()
        assert (e["HTTPS"], e["wsgi.url_scheme"]) == ("on", "https")
        plain = srv.get_json("/t")
        assert "HTTPS" not in plain
        assert plain["wsgi.url_scheme"] == "http"


# -- wsgi_var ------------------------------------------------------------------

def test_wsgi_var_http_level_inherited(nginx):
    srv = nginx(http="wsgi_var FROM_HTTP h;",
                server=f"location / {{ {ENV} }}")
    assert srv.get_json("/")["FROM_HTTP"] == "h"


def test_wsgi_var_server_level_replaces_http(nginx):
    srv = nginx(http="wsgi_var FROM_HTTP h;",
                server=f"wsgi_var FROM_SERVER s; location / {{ {ENV} }}")
    e = srv.get_json("/")
    assert e["FROM_SERVER"] == "s"
    assert "FROM_HTTP" not in e


def test_wsgi_var_location_level_replaces_outer(nginx):
    srv = nginx(http="wsgi_var FROM_HTTP h;",
                server=f"""wsgi_var FROM_SERVER s;
                    location /loc {{ {ENV} wsgi_var FROM_LOC l;
                                     wsgi_var FROM_LOC2 l2; }}
                    location /inh {{ {ENV} }}""")
    e = srv.get_json("/loc")
    assert e["FROM_LOC"] == "l" and e["FROM_LOC2"] == "l2"
    assert "FROM_SERVER" not in e and "FROM_HTTP" not in e
    e = srv.get_json("/inh")
    assert e["FROM_SERVER"] == "s"
    assert "FROM_LOC" not in e and "FROM_HTTP" not in e


def test_wsgi_var_nested_location_inherits(nginx):
    srv = nginx(server=f"""
        location /outer/ {{
            wsgi_var OUTER o;
            location /outer/inner/ {{ {ENV} }}
        }}""")
    e = srv.get_json("/outer/inner/x")
    assert e["OUTER"] == "o"


def test_wsgi_var_with_nginx_variables(nginx):
    srv = nginx(server=f"""location /v/ {{ {ENV}
        wsgi_var MY_HOST $host;
        wsgi_var MY_URI $uri;
        wsgi_var MY_ARG $arg_x;
        wsgi_var MIXED "pre-${{arg_x}}-$request_method-post";
        wsgi_var LITERAL plain;
    }}""")
    e = srv.get_json("/v/p%41th?x=42", headers={"Host": "foo.test"})
    assert e["MY_HOST"] == "foo.test"
    assert e["MY_URI"] == "/v/pAth"
    assert e["MY_ARG"] == "42"
    assert e["MIXED"] == "pre-42-GET-post"
    assert e["LITERAL"] == "plain"
    # evaluated per request
    e = srv.get_json("/v/other?x=7", headers={"Host": "bar.test"})
    assert (e["MY_HOST"], e["MY_URI"], e["MY_ARG"]) == \
        ("bar.test", "/v/other", "7")


def test_wsgi_var_overrides_header(nginx):
    srv = nginx(server=f"""location / {{ {ENV}
        wsgi_var HTTP_X_FORWARDED_FOR fixed;
    }}""")
    e = srv.get_json("/", headers={"X-Forwarded-For": "10.0.0.1"})
    assert e["HTTP_X_FORWARDED_FOR"] == "fixed"


def test_wsgi_var_of_a_key_an_earlier_request_had(nginx):
    """A wsgi_var named as a CGI variable that a request lacks but an
    earlier one had (CONTENT_TYPE, CONTENT_LENGTH of a POST) is there."""
    srv = nginx(server=f"""location / {{ {ENV}
        wsgi_var CONTENT_TYPE x/fixed;
        wsgi_var CONTENT_LENGTH 7;
    }}""")
    for _ in range(2):
        r = srv.post("/", b"abc", headers={"Content-Type": "text/plain"})
        assert r.status == 200, r
        e = srv.get_json("/")
        assert (e["CONTENT_TYPE"], e["CONTENT_LENGTH"]) == ("x/fixed", "7")


def test_wsgi_var_after_a_header_of_the_same_key(nginx):
    """The wsgi_var wins over a header of the same key, also when the
    header's value is long (not cached) and the wsgi_var's is one an
    earlier request had."""
    srv = nginx(server=f"""location / {{ {ENV}
        wsgi_var HTTP_X_FORWARDED_FOR fixed;
    }}""")
    for xff in (None, "x" * 300, "10.0.0.1", "x" * 300):
        e = srv.get_json("/", headers={"X-Forwarded-For": xff} if xff else {})
        assert e["HTTP_X_FORWARDED_FOR"] == "fixed"


def test_wsgi_var_overrides_cgi_variable(nginx):
    srv = nginx(server=f"""location / {{ {ENV}
        wsgi_var REMOTE_ADDR $http_x_real_ip;
        wsgi_var SERVER_NAME override.test;
    }}""")
    e = srv.get_json("/", headers={"X-Real-IP": "192.0.2.7"})
    assert e["REMOTE_ADDR"] == "192.0.2.7"
    assert e["SERVER_NAME"] == "override.test"


# -- wsgi_pass_authorization ---------------------------------------------------

AUTH = {"Authorization": "Basic dXNlcjpwYXNz"}


def test_authorization_off_by_default(nginx):
    srv = env_server(nginx)
    e = srv.get_json("/", headers=AUTH)
    assert "HTTP_AUTHORIZATION" not in e


def test_authorization_on(nginx):
    srv = env_server(nginx, extra="wsgi_pass_authorization on;")
    e = srv.get_json("/", headers=AUTH)
    assert e["HTTP_AUTHORIZATION"] == "Basic dXNlcjpwYXNz"
    assert "HTTP_AUTHORIZATION" not in srv.get_json("/")


def test_authorization_off_explicit(nginx):
    srv = env_server(nginx, extra="wsgi_pass_authorization off;")
    assert "HTTP_AUTHORIZATION" not in srv.get_json("/", headers=AUTH)


def test_authorization_inheritance(nginx):
    srv = nginx(http="wsgi_pass_authorization on;", server=f"""
        location /inherit {{ {ENV} }}
        location /off {{ {ENV} wsgi_pass_authorization off; }}
    """)
    assert srv.get_json("/inherit", headers=AUTH)["HTTP_AUTHORIZATION"] \
        == "Basic dXNlcjpwYXNz"
    assert "HTTP_AUTHORIZATION" not in srv.get_json("/off", headers=AUTH)


def test_authorization_server_level(nginx):
    srv = nginx(server=f"""wsgi_pass_authorization on;
        location / {{ {ENV} }}""")
    assert srv.get_json("/", headers=AUTH)["HTTP_AUTHORIZATION"] \
        == "Basic dXNlcjpwYXNz"


# -- one request's environ does not shape the next one's ------------------------

def _json_request(conn, method, path, headers, body=None):
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    assert resp.status == 200, data[:500]
    return json.loads(data)


@pytest.mark.parametrize("app", ["env_mutate_app.py",
                                 "env_app.py unchanged"])
def test_environ_follows_each_request(nginx, app):
    """Values that usually repeat (method, host, agent, content type) and
    then change or disappear, on one keep-alive connection and on new
    ones: every environ is the request's own, whether the application
    vandalized the last one or left it as it was (then the next request
    starts from it)."""
    srv = nginx(server=f"location / {{ wsgi_pass {{apps}}/{app}; }}")

    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    e = _json_request(conn, "POST", "/a?x=1",
                      {"User-Agent": "agent-a", "Accept": "text/a",
                       "Content-Type": "text/plain",
                       "Cache-Control": "no-cache"}, body=b"data")
    assert e["REQUEST_METHOD"] == "POST"
    assert e["HTTP_USER_AGENT"] == "agent-a"
    assert e["HTTP_ACCEPT"] == "text/a"
    assert e["CONTENT_TYPE"] == "text/plain"
    assert e["HTTP_CACHE_CONTROL"] == "no-cache"
    assert e["QUERY_STRING"] == "x=1"

    # the same again: nothing left over from the vandalized first environ
    e = _json_request(conn, "POST", "/a?x=1",
                      {"User-Agent": "agent-a", "Accept": "text/a",
                       "Content-Type": "text/plain",
                       "Cache-Control": "no-cache"}, body=b"data")
    assert e["REQUEST_METHOD"] == "POST"
    assert e["SERVER_NAME"] == "localhost"
    assert e["SERVER_PORT"] == str(srv.port)
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert e["HTTP_HOST"] == f"127.0.0.1:{srv.port}"
    assert e["HTTP_USER_AGENT"] == "agent-a"
    assert e["HTTP_ACCEPT"] == "text/a"
    assert "X_ADDED" not in e

    # the headers gone, the method and the query changed
    e = _json_request(conn, "GET", "/b", {})
    assert e["REQUEST_METHOD"] == "GET"
    assert e["QUERY_STRING"] == ""
    for gone in ("HTTP_USER_AGENT", "HTTP_ACCEPT", "CONTENT_TYPE",
                 "HTTP_CACHE_CONTROL", "CONTENT_LENGTH", "X_ADDED"):
        assert gone not in e, gone

    # back, with other values
    e = _json_request(conn, "PUT", "/c?y=2",
                      {"User-Agent": "agent-c", "Accept": "text/c",
                       "Content-Type": "application/json"}, body=b"{}")
    assert e["REQUEST_METHOD"] == "PUT"
    assert e["HTTP_USER_AGENT"] == "agent-c"
    assert e["HTTP_ACCEPT"] == "text/c"
    assert e["CONTENT_TYPE"] == "application/json"
    assert "HTTP_CACHE_CONTROL" not in e

    # keys of each request's own (cookie, referer, a header of no
    # well-known name) come and go
    e = _json_request(conn, "GET", "/f", {"Cookie": "a=1",
                                          "Referer": "http://r/",
                                          "X-Forwarded-For": "10.1.1.1"})
    assert (e["HTTP_COOKIE"], e["HTTP_REFERER"],
            e["HTTP_X_FORWARDED_FOR"]) == ("a=1", "http://r/", "10.1.1.1")
    assert "CONTENT_LENGTH" not in e and "CONTENT_TYPE" not in e
    e = _json_request(conn, "GET", "/g", {"Cookie": "b=2"})
    assert e["HTTP_COOKIE"] == "b=2"
    assert "HTTP_REFERER" not in e and "HTTP_X_FORWARDED_FOR" not in e
    e = _json_request(conn, "GET", "/h", {"X-Other": "o"})
    assert e["HTTP_X_OTHER"] == "o" and "HTTP_COOKIE" not in e
    e = _json_request(conn, "GET", "/i", {})
    assert "HTTP_X_OTHER" not in e and "HTTP_COOKIE" not in e
    assert e["PATH_INFO"] == "/i"
    conn.close()

    # HTTP/1.0 without a Host header, on a new connection
    e = raw_env(srv, ["GET /d HTTP/1.0"])
    assert e["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in e
    assert "HTTP_USER_AGENT" not in e
    assert e["SERVER_NAME"] == "localhost"

    e = raw_env(srv, ["GET /e HTTP/1.1", "Host: example.test",
                      "Connection: close"])
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert e["HTTP_HOST"] == "example.test"


def test_environ_kept_by_the_application_is_its_own(nginx):
    """An environ the application keeps is not handed to a later request,
    nor changed by one."""
    srv = nginx(server="location / { wsgi_pass {apps}/env_keep_app.py "
                       "unchanged; }")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    first = _json_request(conn, "GET", "/first?keep=1", {"Cookie": "c=1"})
    assert first["is_kept"] is False
    for i in range(3):
        e = _json_request(conn, "GET", f"/next{i}", {})
        assert e["is_kept"] is False, e
        assert (e["path"], e["cookie"]) == (f"/next{i}", None), e
        assert (e["kept_path"], e["kept_cookie"]) == ("/first", "c=1"), e
        if i == 0:
            keys = e["kept_keys"]
        assert e["kept_keys"] == keys, e
    conn.close()


@pytest.mark.parametrize("do", ["replace", "swap", "add", "keep"])
def test_environ_changed_or_kept_is_not_reused(nginx, do):
    """An environ its application changed in place (a value replaced, a
    key swapped for another, a key added) or kept is not the next
    request's: the next one, with the same headers, sees its own values
    only."""
    srv = nginx(server="location / { wsgi_pass {apps}/env_change_app.py; }")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    headers = {"Accept": "text/a", "User-Agent": "agent-a"}
    for _ in range(2):
        first = _json_request(conn, "GET", f"/x?do={do}", headers)
        assert first["HTTP_ACCEPT"] == "text/a"
        for i in range(2):
            e = _json_request(conn, "GET", f"/next{i}", headers)
            assert e["is_kept"] is False, e
            assert (e["REQUEST_METHOD"], e["HTTP_ACCEPT"],
                    e["SERVER_PORT"], e["PATH_INFO"]) == (
                "GET", "text/a", str(srv.port), f"/next{i}"), e
            assert "X_ADDED" not in e, e
    conn.close()


def test_environ_has_only_its_request_keys(nginx):
    """Keys of earlier requests (a body's length, a cookie, a referer)
    are not in a request without them, and a request with them has its
    own values, the first request's again included."""
    srv = nginx(server="location / { wsgi_pass {apps}/env_app.py; }")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    first = {"Cookie": "c=1", "Referer": "http://r/1",
             "X-Forwarded-For": "10.0.0.1"}
    try:
        for _ in range(2):
            e = _json_request(conn, "POST", "/a", first, body=b"abc")
            assert (e["PATH_INFO"], e["CONTENT_LENGTH"],
                    e["HTTP_COOKIE"]) == ("/a", "3", "c=1"), e
            e = _json_request(conn, "GET", "/b", {})
            for k in ("CONTENT_LENGTH", "HTTP_COOKIE", "HTTP_REFERER",
                      "HTTP_X_FORWARDED_FOR"):
                assert k not in e, e
            assert e["PATH_INFO"] == "/b"
            e = _json_request(conn, "GET", "/c", {"Cookie": "c=3"})
            assert (e["PATH_INFO"], e["HTTP_COOKIE"]) == ("/c", "c=3"), e
            assert "HTTP_REFERER" not in e, e
    finally:
        conn.close()


def test_environ_under_concurrent_requests(nginx):
    """Requests at once, with methods, agents and cookies that change from
    one to the next: each environ is its own request's, also when
    environs left as they were serve the next requests."""
    srv = nginx(server="location / { wsgi_pass {apps}/env_app.py "
                       "unchanged; }")

    def one(i):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
        try:
            for j in range(20):
                method = ("GET", "POST")[(i + j) % 2]
                headers = {"User-Agent": f"agent-{(i * j) % 3}"}
                if j % 3:
                    headers["Cookie"] = f"c={i}.{j}"
                body = b"x" * j if method == "POST" else None
                query = f"q={j}&nap={(i + j) % 3 * 5}"
                e = _json_request(conn, method, f"/c{i}/{j}?{query}",
                                  headers, body=body)
                assert (e["REQUEST_METHOD"], e["PATH_INFO"],
                        e["QUERY_STRING"], e["HTTP_USER_AGENT"]) == (
                    method, f"/c{i}/{j}", query, headers["User-Agent"])
                assert e.get("HTTP_COOKIE") == headers.get("Cookie")
                assert e.get("CONTENT_LENGTH") == (
                    str(j) if method == "POST" else None), e
        finally:
            conn.close()

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        for f in [ex.submit(one, i) for i in range(8)]:
            f.result()


def test_environ_per_location(nginx):
    """Two locations with their own mount points and SERVER_NAME
    alternate: each request gets its own location's values."""
    srv = nginx(server="""
        location /one/ { wsgi_pass {apps}/env_mutate_app.py; }
        location /two/ { wsgi_pass {apps}/env_mutate_app.py;
                         wsgi_var SERVER_NAME second.test; }
    """)
    for _ in range(3):
        one = raw_env(srv, ["GET /one/x HTTP/1.1", "Host: a",
                            "Connection: close"])
        two = raw_env(srv, ["GET /two/y HTTP/1.1", "Host: b",
                            "Connection: close"])
        assert one["SCRIPT_NAME"] == "/one"
        assert one["PATH_INFO"] == "/x"
        assert one["SERVER_NAME"] == "localhost"
        assert one["HTTP_HOST"] == "a"
        assert two["SCRIPT_NAME"] == "/two"
        assert two["PATH_INFO"] == "/y"
        assert two["SERVER_NAME"] == "second.test"
        assert two["HTTP_HOST"] == "b"


def test_wsgi_var_cannot_replace_the_server_objects(nginx):
    """wsgi_var may add keys, but wsgi.input, wsgi.errors,
    ngx.client_connected and wsgi.url_scheme stay the server's."""
    srv = env_server(nginx, extra="wsgi_var wsgi.input fake; "
                                  "wsgi_var wsgi.errors fake; "
                                  "wsgi_var ngx.client_connected fake; "
                                  "wsgi_var wsgi.url_scheme ftp; "
                                  "wsgi_var APP_ENV test;")
    for _ in range(3):
        e = srv.get_json("/")
        assert e["APP_ENV"] == "test"
        assert e["wsgi.url_scheme"] == "http"
        assert e["wsgi.input"]["type"] == "Input"
        assert e["wsgi.errors"]["type"] == "Errors"
        assert e["ngx.client_connected"]["type"] == "ClientConnected"
        assert e["ngx.client_connected"]["callable"] is True
