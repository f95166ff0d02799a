"""wsgi_middleware: the stack's order, the default and dotted callables,
inheritance across http, server and location, failures (a 500, a log
line, retried by the next request) and configuration errors.

The middleware modules and the application are written by each test into
its prefix, found through wsgi_python_path."""

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import assert_emerg_at


APP = '''\
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("app:" + environ.get("mw.order", "")).encode()]
'''

# a layer: notes that it saw the request, adds a header, wraps the body
LAYER = '''\
import time

NAME = "@NAME@"
DELAY = @DELAY@
BUILT = []


def @CALLABLE@(app):
    BUILT.append(app)
    build = len(BUILT)
    time.sleep(DELAY)

    def wrapped(environ, start_response):
        environ["mw.order"] = environ.get("mw.order", "") + NAME

        def sr(status, headers, exc_info=None):
            headers = list(headers) + [
                ("X-MW", NAME),
                ("X-MW-Built-" + NAME, str(len(BUILT))),   # builds so far
                ("X-MW-Id-" + NAME, str(build))]           # this one's
            return start_response(status, headers, exc_info)

        body = b"".join(app(environ, sr))
        return [b"<" + NAME.encode() + b">" + body
                + b"</" + NAME.encode() + b">"]

    return wrapped
'''


def layer(name, callable_="middleware", delay=0):
    return (LAYER.replace("@NAME@", name).replace("@CALLABLE@", callable_)
            .replace("@DELAY@", str(delay)))


def write_modules(nginx, modules, app=APP):
    """Write app.py and the modules ({name: source}, "pkg/mod" for a
    package) into the next server's prefix; the http text that finds them."""
    prefix = nginx.next_prefix()
    mw = prefix / "mw"
    mw.mkdir(parents=True, exist_ok=True)
    (prefix / "app.py").write_text(app)
    for name, source in modules.items():
        path = mw / (name + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent != mw:
            (path.parent / "__init__.py").touch()
        path.write_text(source)
    return mw, "wsgi_python_path {prefix}/mw;"


def log_after(srv, mark, regex, timeout=5):
    """The error log written after mark, once regex matches it."""
    rx = re.compile(regex, re.M)
    deadline = time.monotonic() + timeout
    while True:
        text = srv.error_log()[mark:]
        if rx.search(text) or time.monotonic() > deadline:
            assert rx.search(text), \
                f"no {regex!r} in the new error log:\n{text[-3000:]}"
            return text
        time.sleep(0.02)


def assert_500(srv, regex):
    mark = len(srv.error_log())
    r = srv.get("/")
    assert r.status == 500, r
    return log_after(srv, mark, regex)


# -- the stack ---------------------------------------------------------------


def test_first_listed_sees_the_request_first(nginx):
    _, http = write_modules(nginx, {"mw_a": layer("a"), "mw_b": layer("b")})
    srv = nginx(http=http, server="""
        location / {
            wsgi_pass {prefix}/app.py;
            wsgi_middleware mw_a;
            wsgi_middleware mw_b middleware;
        }
    """)
    r = srv.get("/")
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    # a(b(app)): a sees the request first and the response last
    assert r.body == b"<a><b>app:ab</b></a>"
    assert r.header_all("X-MW") == ["b", "a"]


def test_stack_is_built_once_per_location(nginx):
    _, http = write_modules(nginx, {"mw_a": layer("a")})
    srv = nginx(http=http, server="""
        wsgi_middleware mw_a;
        location /x { wsgi_pass {prefix}/app.py; }
        location /y { wsgi_pass {prefix}/app.py; }
    """)
    for _ in range(3):
        assert srv.get("/x").header("X-MW-Built-a") == "1"
    # the other location builds its own, once
    for _ in range(3):
        assert srv.get("/y").header("X-MW-Built-a") == "2"
    r = srv.get("/x")
    assert (r.header("X-MW-Built-a"), r.header("X-MW-Id-a")) == ("2", "1")


def test_concurrent_first_requests_share_one_stack(nginx):
    # two first requests build at once (on a pool): one stack is kept
    _, http = write_modules(nginx, {"mw_s": layer("s", delay=0.3)})
    srv = nginx(http=http, server="""
        location / {
            wsgi_pass {prefix}/app.py;
            wsgi_middleware mw_s;
        }
    """)
    with ThreadPoolExecutor(2) as pool:
        first = list(pool.map(lambda _: srv.get("/"), range(2)))
    for r in first:
        assert (r.status, r.body) == (200, b"<s>app:s</s>"), \
            f"{r!r}\n{srv.logs_tail()}"
    ids = {srv.get("/").header("X-MW-Id-s") for _ in range(4)}
    assert len(ids) == 1, ids
    assert ids <= {r.header("X-MW-Id-s") for r in first}


def test_callable_argument_default_and_dotted(nginx):
    dotted = layer("d", "build").replace("\ndef build", "\ndef _build")
    dotted += "\n\nclass Factory:\n    build = staticmethod(_build)\n"
    _, http = write_modules(nginx, {"mw_a": layer("a"),
                                    "mw_c": layer("c", "make"),
                                    "mw_d": dotted,
                                    "pkg/sub": layer("p")})
    srv = nginx(http=http, server="""
        location /default {
            wsgi_pass {prefix}/app.py;
            wsgi_middleware mw_a;
        }
        location /named {
            wsgi_pass {prefix}/app.py;
            wsgi_middleware mw_c make;
        }
        location /dotted {
            wsgi_pass {prefix}/app.py;
            wsgi_middleware mw_d Factory.build;
            wsgi_middleware pkg.sub;
        }
    """)
    assert srv.get("/default").body == b"<a>app:a</a>"
    assert srv.get("/named").body == b"<c>app:c</c>"
    assert srv.get("/dotted").body == b"<d><p>app:dp</p></d>"


def test_inheritance_http_level(nginx):
    _, http = write_modules(nginx, {"mw_a": layer("a"), "mw_b": layer("b")})
    srv = nginx(http=http + " wsgi_middleware mw_a;", server="""
        location /inherit { wsgi_pass {prefix}/app.py; }
        location /own {
            wsgi_pass {prefix}/app.py;
            wsgi_middleware mw_b;
        }
        location /if {
            wsgi_pass {prefix}/app.py;
            wsgi_middleware mw_b;
            wsgi_middleware mw_a;
            if ($arg_x) { }
            limit_except GET { allow all; }
        }
    """)
    assert srv.get("/inherit").body == b"<a>app:a</a>"
    # a list of its own replaces the outer one: no "a" here
    assert srv.get("/own").body == b"<b>app:b</b>"
    # "if" and "limit_except" run their location's stack
    assert srv.get("/if?x=1").body == b"<b><a>app:ba</a></b>"
    assert srv.get("/if").body == b"<b><a>app:ba</a></b>"
    assert srv.post("/if", b"x").body == b"<b><a>app:ba</a></b>"


def test_inheritance_server_level(nginx):
    _, http = write_modules(nginx, {"mw_a": layer("a"), "mw_b": layer("b"),
                                    "mw_c": layer("c")})
    srv = nginx(http=http + " wsgi_middleware mw_a;", server="""
        wsgi_middleware mw_b;
        location /inherit { wsgi_pass {prefix}/app.py; }
        location /own {
            wsgi_pass {prefix}/app.py;
            wsgi_middleware mw_c;
        }
    """)
    assert srv.get("/inherit").body == b"<b>app:b</b>"
    assert srv.get("/own").body == b"<c>app:c</c>"


def test_reload_takes_the_new_stack(nginx):
    _, http = write_modules(nginx, {"mw_a": layer("a"), "mw_b": layer("b")})
    srv = nginx(http=http, server="""
        location / {
            wsgi_pass {prefix}/app.py;
            wsgi_middleware mw_a;
        }
    """)
    assert srv.get("/").body == b"<a>app:a</a>"
    conf = srv.conf.read_text()
    srv.conf.write_text(conf.replace("wsgi_middleware mw_a;",
                                     "wsgi_middleware mw_b;"))
    srv.reload()
    assert srv.get("/").body == b"<b>app:b</b>"


def test_library_middleware_proxyfix(nginx):
    # a middleware as libraries ship them: a class taking the application
    pytest.importorskip("werkzeug")
    # threading imported first by a pool thread, at request time, would
    # hang the worker's exit (a separate bug): the script imports it
    app = "import threading\n" + APP.replace(
        'environ.get("mw.order", "")', 'environ["REMOTE_ADDR"]')
    _, http = write_modules(nginx, {}, app=app)
    srv = nginx(http=http, server="""
        location / {
            wsgi_pass {prefix}/app.py;
            wsgi_middleware werkzeug.middleware.proxy_fix ProxyFix;
        }
    """)
    r = srv.get("/", headers={"X-Forwarded-For": "203.0.113.9"})
    assert (r.status, r.body) == (200, b"app:203.0.113.9"), \
        f"{r!r}\n{srv.logs_tail()}"


def test_no_middleware(nginx):
    _, http = write_modules(nginx, {})
    srv = nginx(http=http, server="location / { wsgi_pass {prefix}/app.py; }")
    r = srv.get("/")
    assert (r.status, r.body) == (200, b"app:")
    assert r.header("X-MW") is None


# -- failures ----------------------------------------------------------------


BROKEN = {
    "missing": (None, r"ModuleNotFoundError: No module named 'mw_x'"),
    "raises": ("raise RuntimeError('mw-import-boom-17')\n",
               r"wsgi: RuntimeError: mw-import-boom-17"),
    "syntax_error": ("def middleware(app:\n    pass\n",
                     r"wsgi: SyntaxError"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_import_failure_is_500_and_retried(nginx, kind):
    source, err_re = BROKEN[kind]
    mw, http = write_modules(nginx,
                             {} if source is None else {"mw_x": source})
    srv = nginx(http=http, server="""
        location / {
            wsgi_pass {prefix}/app.py;
            wsgi_middleware mw_x;
        }
        location = /ok { wsgi_pass {prefix}/app.py; }
    """)
    pids = srv.worker_pids()
    script = srv.prefix / "app.py"
    for _ in range(2):
        log = assert_500(srv, err_re)
        assert re.search(r'\[error\] .*wsgi: middleware "mw_x:middleware" '
                         r'for "%s": import failed' % re.escape(str(script)),
                         log), log
        assert re.search(r"\[error\] .*" + err_re, log), log
    assert srv.get("/ok").body == b"app:"
    assert srv.worker_pids() == pids

    fixed = layer("x")
    assert source is None or len(fixed) != len(source)  # no stale .pyc
    (mw / "mw_x.py").write_text(fixed)
    r = srv.get("/")
    assert (r.status, r.body) == (200, b"<x>app:x</x>"), \
        f"{r!r}\n{srv.logs_tail()}"
    assert srv.worker_pids() == pids


NONCALLABLE = '''\
CALLS = []


def middleware(app):
    CALLS.append(1)
    if len(CALLS) < 3:
        return 42
    def wrapped(environ, start_response):
        return app(environ, start_response)
    return wrapped
'''


def test_noncallable_result_is_500_and_retried(nginx):
    _, http = write_modules(nginx,
                            {"mw_n": NONCALLABLE, "mw_a": layer("a")})
    srv = nginx(http=http, server="""
        location / {
            wsgi_pass {prefix}/app.py;
            wsgi_middleware mw_n;
            wsgi_middleware mw_a;
        }
    """)
    script = srv.prefix / "app.py"
    for _ in range(2):
        log = assert_500(srv, r"returned a non-callable int")
        assert re.search(r'\[error\] .*wsgi: middleware "mw_n:middleware" '
                         r'for "%s" returned a non-callable int, '
                         % re.escape(str(script)), log), log
    # nothing was kept: the third request builds the whole stack again
    r = srv.get("/")
    assert (r.status, r.body) == (200, b"<a>app:a</a>"), \
        f"{r!r}\n{srv.logs_tail()}"
    assert r.header("X-MW-Built-a") == "3"
    # and now it is kept
    assert srv.get("/").header("X-MW-Built-a") == "3"


@pytest.mark.parametrize("source, callable_, regex", [
    ("X = 1\n", "middleware",
     r'middleware "mw_e:middleware" for "[^"]*app\.py": callable not found'),
    ("middleware = 5\n", "middleware",
     r'middleware "mw_e:middleware" for "[^"]*app\.py" is not callable'),
    ("class K:\n    pass\n", "K.make",
     r'middleware "mw_e:K\.make" for "[^"]*app\.py": callable not found'),
    ("def middleware(app):\n    raise ValueError('factory-boom-5')\n",
     "middleware",
     r'middleware "mw_e:middleware" for "[^"]*app\.py" raised an exception'
     r'(?s:.*)wsgi: ValueError: factory-boom-5'),
], ids=["missing", "not_callable", "missing_dotted", "raises"])
def test_bad_callable_is_500(nginx, source, callable_, regex):
    _, http = write_modules(nginx, {"mw_e": source})
    srv = nginx(http=http, server=f"""
        location / {{
            wsgi_pass {{prefix}}/app.py;
            wsgi_middleware mw_e {callable_};
        }}
    """)
    for _ in range(2):
        log = assert_500(srv, regex)
        assert "[error]" in log


def test_failure_in_inner_layer_keeps_nothing(nginx):
    mw, http = write_modules(nginx, {"mw_a": layer("a")})
    srv = nginx(http=http, server="""
        location / {
            wsgi_pass {prefix}/app.py;
            wsgi_middleware mw_a;
            wsgi_middleware mw_y;
        }
    """)
    assert_500(srv, r'middleware "mw_y:middleware" .*import failed')
    (mw / "mw_y.py").write_text(layer("y"))
    r = srv.get("/")
    assert r.body == b"<a><y>app:ay</y></a>", f"{r!r}\n{srv.logs_tail()}"
    # mw_a was built once: the inner layer failed first, outer ones later
    assert r.header("X-MW-Built-a") == "1"


# -- configuration -----------------------------------------------------------


@pytest.mark.parametrize("args, msg_re", [
    ("1bad", r'invalid middleware module name "1bad"'),
    ("a..b", r'invalid middleware module name "a\.\.b"'),
    ("a.", r'invalid middleware module name "a\."'),
    ("a-b", r'invalid middleware module name "a-b"'),
    ('""', r"empty middleware module name"),
    ("mod bad-name", r'invalid callable name "bad-name"'),
    ("mod .x", r'invalid callable name "\.x"'),
    ('mod ""', r"empty callable name"),
    ("mod a b", r'invalid number of arguments in "wsgi_middleware"'),
    ("", r'invalid number of arguments in "wsgi_middleware"'),
])
def test_config_errors(nginx_t, args, msg_re):
    rc, out, conf = nginx_t(server="location / {\n"
                            " wsgi_pass {apps}/hello.py;\n"
                            f" wsgi_middleware {args};\n"
                            "}")
    assert_emerg_at(rc, out, conf, "wsgi_middleware", msg_re)


def test_config_error_at_http_level(nginx_t):
    rc, out, conf = nginx_t(http="wsgi_middleware ok;\n"
                                 "wsgi_middleware 9lives;",
                            server="location / { wsgi_pass {apps}/hello.py; }")
    assert_emerg_at(rc, out, conf, "wsgi_middleware 9lives",
                    r'invalid middleware module name "9lives"')


def test_config_ok_at_every_level(nginx_t):
    rc, out, _ = nginx_t(http="wsgi_middleware a.b c;",
                         server="wsgi_middleware _x;\n"
                                "location / {\n"
                                " wsgi_pass {apps}/hello.py;\n"
                                " wsgi_middleware m F.g_2;\n"
                                " wsgi_middleware n;\n"
                                "}")
    assert rc == 0, out
