"""Sub-interpreters and application groups (issue #15).

wsgi_enable_subinterpreters, wsgi_application_group ("%{GLOBAL}" is the
main interpreter), wsgi_use_main_interpreter, a server's or location's
wsgi_python_path, wsgi_subinterpreter_fallback, and the end of the
interpreters when the worker exits.
"""

import concurrent.futures
import os
import re
import sys
import time

import pytest

from harness import (APPS_DIR, assert_emerg_at, conf_line, pid_alive,
                     subinterpreter_mode)

# these name their groups; the suite's sub-interpreter run changes the default
pytestmark = pytest.mark.skipif(subinterpreter_mode(),
                                reason="tests the default itself")

PATH = "wsgi_python_path {apps}/interp;"
APP = "{apps}/interp_app.py"


def loc(name, extra=""):
    return f"location /{name} {{ {extra} wsgi_pass {APP}; }}\n"


def test_groups_keep_module_globals_apart(nginx):
    srv = nginx(http=PATH, server=(
        loc("a1", "wsgi_application_group alpha;")
        + loc("a2", "wsgi_application_group alpha;")
        + loc("b", "wsgi_application_group beta;")
        + loc("m")))

    assert srv.get_json("/a1?set=one")["shared"] == "one"
    # the same group shares it, the others do not see it
    assert srv.get_json("/a2")["shared"] == "one"
    assert srv.get_json("/b")["shared"] is None
    assert srv.get_json("/m")["shared"] is None

    assert srv.get_json("/m?set=two")["shared"] == "two"
    assert srv.get_json("/a1")["shared"] == "one"
    assert srv.get_json("/b")["shared"] is None


def test_group_name_in_environ_and_ngx_module(nginx):
    srv = nginx(http=PATH, server=(
        loc("a", "wsgi_application_group alpha;") + loc("m")))

    a = srv.get_json("/a")
    assert a["group"] == "alpha" and a["interpreter"] == "alpha"

    m = srv.get_json("/m")
    assert m["group"] == "" and m["interpreter"] == ""


def test_one_group_per_script_with_subinterpreters_on(nginx, tmp_path):
    other = tmp_path / "other_app.py"
    other.write_text((APPS_DIR / "interp_app.py").read_text())
    srv = nginx(http=PATH + "wsgi_enable_subinterpreters on;", server=(
        loc("a") + loc("a2")
        + f"location /o {{ wsgi_pass {other}; }}\n"))

    a = srv.get_json("/a?set=x")
    assert a["group"].endswith("/interp_app.py")
    # one script in two locations: one group, one module
    a2 = srv.get_json("/a2")
    assert a2["group"] == a["group"] and a2["shared"] == "x"
    assert a2["hits"] == 2

    o = srv.get_json("/o")
    assert o["group"] == str(other) and o["shared"] is None


def test_global_group_and_main_interpreter_directive(nginx):
    srv = nginx(http=PATH + "wsgi_enable_subinterpreters on;", server=(
        loc("g", 'wsgi_application_group "%{GLOBAL}";')
        + loc("u", "wsgi_use_main_interpreter on;")
        + loc("u2", "wsgi_application_group named; "
                    "wsgi_use_main_interpreter on;")
        + loc("s")))

    assert srv.get_json("/g?set=main")["group"] == ""
    for path in ("/u", "/u2"):
        j = srv.get_json(path)
        assert j["group"] == "" and j["shared"] == "main", (path, j)

    s = srv.get_json("/s")
    assert s["group"] != "" and s["shared"] is None


def test_subinterpreters_inherit_from_server_level(nginx):
    srv = nginx(http=PATH, server=(
        "wsgi_enable_subinterpreters on;\n"
        + loc("a") + loc("off", "wsgi_enable_subinterpreters off;")))

    assert srv.get_json("/a")["group"].endswith("interp_app.py")
    assert srv.get_json("/off")["group"] == ""


def test_location_python_path_for_its_group(nginx, tmp_path):
    for name in ("one", "two"):
        d = tmp_path / name
        d.mkdir()
        (d / "pathmod.py").write_text(f"VALUE = {name!r}\n")

    srv = nginx(http=PATH, server=(
        loc("one", f"wsgi_application_group one; "
                   f"wsgi_python_path {{apps}}/interp:{tmp_path}/one;")
        + loc("two", f"wsgi_application_group two; "
                     f"wsgi_python_path {{apps}}/interp:{tmp_path}/two;")
        + loc("none", "wsgi_application_group none;")
        + loc("m")))

    assert srv.get_json("/one")["pathmod"] == "one"
    assert srv.get_json("/two")["pathmod"] == "two"
    # the http level's path, without either directory
    assert srv.get_json("/none")["pathmod"] is None
    assert srv.get_json("/m")["pathmod"] is None


def test_server_python_path_inherited_by_its_groups(nginx, tmp_path):
    (tmp_path / "pathmod.py").write_text("VALUE = 'server'\n")
    srv = nginx(http=PATH, server=(
        f"wsgi_python_path {{apps}}/interp:{tmp_path};\n"
        + loc("a", "wsgi_application_group a;")))

    assert srv.get_json("/a")["pathmod"] == "server"


def test_location_python_path_needs_a_subinterpreter(nginx_t):
    rc, out, conf = nginx_t(http=PATH, server=(
        "location /m {\n wsgi_python_path /tmp;\n"
        f" wsgi_pass {APP};\n }}"))
    assert rc != 0, out
    line = conf_line(conf, "wsgi_pass")
    assert re.search(r'\[emerg\] \d+#\d+: "wsgi_python_path" of a server '
                     r'or location needs its application in a '
                     r'sub-interpreter, for '
                     rf'"wsgi_pass" in {re.escape(str(conf))}:{line}', out), out


def test_one_group_one_python_path(nginx_t):
    rc, out, conf = nginx_t(http=PATH, server=(
        "location /a {\n wsgi_application_group g;\n"
        " wsgi_python_path /tmp;\n"
        f" wsgi_pass {APP};\n }}\n"
        "location /b {\n wsgi_application_group g;\n"
        " wsgi_python_path /var;\n"
        f" wsgi_pass {APP};\n }}"))
    assert rc != 0, out
    assert re.search(r'\[emerg\] \d+#\d+: application group "g" has another '
                     r'"wsgi_python_path" in \S+:\d+ than in \S+:\d+', out), \
        out


def test_empty_group_name(nginx_t):
    rc, out, conf = nginx_t(server='wsgi_application_group "";')
    assert_emerg_at(rc, out, conf, "wsgi_application_group",
                    r"empty application group name")


def test_fallback_invalid_value(nginx_t):
    rc, out, conf = nginx_t(server="wsgi_subinterpreter_fallback maybe;")
    assert_emerg_at(rc, out, conf, "wsgi_subinterpreter_fallback",
                    r'invalid value "maybe"')


def test_groups_under_concurrent_load(nginx):
    """Steps of several interpreters interleave on the same threads."""
    srv = nginx(http=PATH, server=(
        loc("a", "wsgi_application_group alpha;")
        + loc("b", "wsgi_application_group beta;") + loc("m")))
    srv.get_json("/a?set=A")
    srv.get_json("/b?set=B")
    srv.get_json("/m?set=M")
    want = {"a": ("alpha", "A"), "b": ("beta", "B"), "m": ("", "M")}

    def fetch(i):
        name = "abm"[i % 3]
        j = srv.get_json(f"/{name}")
        return name, j["group"], j["shared"]

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(fetch, range(300)))

    for name, group, shared in results:
        assert (group, shared) == want[name], (name, group, shared)
    hits = [srv.get_json(f"/{n}")["hits"] for n in "abm"]
    assert sum(hits) == 300 + 3 + 3


def test_reload_with_several_interpreters(nginx):
    srv = nginx(http=PATH, workers=2, server=(
        loc("a", "wsgi_application_group alpha;")
        + loc("b", "wsgi_application_group beta;") + loc("m")))
    for _ in range(2):
        old = set(srv.worker_pids())
        srv.get_json("/a?set=x")
        new = srv.reload()
        assert not old & set(new)
        for name, group in (("a", "alpha"), ("b", "beta"), ("m", "")):
            j = srv.get_json(f"/{name}")
            assert j["group"] == group and j["pid"] in new
    srv.stop()
    assert "exited on signal" not in srv.error_log()


THREAD_APP = '''
import threading, time
def spin():
    while True:
        print("spinning")
        time.sleep(0.01)
threading.Thread(target=spin, daemon={daemon}).start()
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''


@pytest.mark.parametrize("where", ["group", "main"])
def test_exit_with_a_daemon_thread_left_running(nginx, tmp_path, where):
    app = tmp_path / "daemon_app.py"
    app.write_text(THREAD_APP.format(daemon=True))
    extra = "wsgi_application_group d;" if where == "group" else ""
    srv = nginx(server=f"location / {{ {extra} wsgi_pass {app}; }}")
    assert srv.get("/").status == 200
    workers = srv.worker_pids()
    srv.stop()
    assert not any(pid_alive(p) for p in workers)
    log = srv.error_log()
    assert "exited on signal" not in log
    assert "did not end within" not in log
    if where == "group":
        assert re.search(r'\[notice\] .*wsgi: the interpreter of application '
                         r'group "d" is not ended, daemon threads of the '
                         r'application still run', log), log


@pytest.mark.parametrize("where", ["group", "main"])
def test_exit_with_a_thread_that_never_ends(nginx, tmp_path, where):
    app = tmp_path / "stuck_app.py"
    app.write_text(THREAD_APP.format(daemon=False))
    extra = "wsgi_application_group s;" if where == "group" else ""
    srv = nginx(main="worker_shutdown_timeout 1s;",
                server=f"location / {{ {extra} wsgi_pass {app}; }}")
    assert srv.get("/").status == 200
    workers = srv.worker_pids()
    started = time.monotonic()
    srv.stop(timeout=20)
    # generous: the bound is that it ends at all, not its speed
    assert time.monotonic() - started < 15
    assert not any(pid_alive(p) for p in workers)
    log = srv.error_log()
    assert re.search(r"\[warn\] .*wsgi: Python did not end within 1000 ms, "
                     r"a thread of the application may still run; the "
                     r"worker exits", log), log
    assert "exited on signal" not in log


def test_ngx_module_only_in_our_interpreters(nginx, tmp_path):
    """An interpreter the application makes itself has no "ngx"."""
    app = tmp_path / "own_interp_app.py"
    app.write_text('''
try:
    import _interpreters as interpreters
except ImportError:
    import _xxsubinterpreters as interpreters
def create():
    # an interpreter like ours, sharing the GIL: "ngx" refuses it itself
    for args in (("legacy",), ()):
        try:
            return interpreters.create(*args)
        except (TypeError, ValueError):
            continue
    raise RuntimeError("cannot create an interpreter")
def application(environ, start_response):
    try:
        i = interpreters.create(isolated=False)
    except TypeError:
        i = create()
    try:
        # 3.13 returns what the code raised, 3.11 and 3.12 raise it
        failed = interpreters.run_string(i, "import ngx")
        out = b"imported" if failed is None else str(failed).encode()
    except Exception as e:
        out = type(e).__name__.encode() + b": " + str(e).encode()
    finally:
        interpreters.destroy(i)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [out]
''')
    srv = nginx(server=f"location / {{ wsgi_pass {app}; }}")
    r = srv.get("/")
    assert r.status == 200
    assert "exists only in the interpreters nginx created" in r.text, r.text


# -- extensions that cannot load in a sub-interpreter ------------------------

SINGLE_PHASE_APP = '''
import ngx
import {module}
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("in %r" % ngx.interpreter).encode()]
'''


def workers_python():
    """The Python the module under test was built for: (major, minor)."""
    cfg = os.environ.get("NGX_WSGI_PYTHON_CONFIG")
    if not cfg:
        return sys.version_info[:2]
    m = re.search(r"python(\d)\.(\d+)-config$", cfg)
    return (int(m.group(1)), int(m.group(2))) if m else sys.version_info[:2]


def single_phase_module():
    """A single-phase extension the workers' Python has, or skip."""
    if workers_python() < (3, 12):
        pytest.skip("3.11 has no multi-interpreter extension check")
    return "_testsinglephase"


def test_fallback_to_main_for_a_single_phase_extension(nginx, tmp_path):
    module = single_phase_module()
    app = tmp_path / "sp_app.py"
    app.write_text(SINGLE_PHASE_APP.format(module=module))
    srv = nginx(server=f"location / {{ wsgi_application_group sp; "
                       f"wsgi_pass {app}; }}")
    r = srv.get("/")
    if r.status == 500 and "No module named" in srv.error_log():
        pytest.skip(f"{module} is not installed with this Python")
    assert r.status == 200 and r.text == "in ''", r.text
    assert re.search(rf'\[warn\] .*wsgi: extension module "{module}" cannot '
                     rf'be loaded in the sub-interpreter of application '
                     rf'group "sp", for "{re.escape(str(app))}": the '
                     rf'application runs in the main interpreter',
                     srv.error_log())


def test_fallback_off_is_500(nginx, tmp_path):
    module = single_phase_module()
    app = tmp_path / "sp_app.py"
    app.write_text(SINGLE_PHASE_APP.format(module=module))
    srv = nginx(server=f"location / {{ wsgi_application_group sp; "
                       f"wsgi_subinterpreter_fallback off; "
                       f"wsgi_pass {app}; }}")
    assert srv.get("/").status == 500
    assert srv.get("/").status == 500
    log = srv.error_log()
    if "No module named" in log:
        pytest.skip(f"{module} is not installed with this Python")
    assert re.search(rf'\[warn\] .*extension module "{module}" cannot be '
                     rf'loaded in the sub-interpreter of application group '
                     rf'"sp", for "{re.escape(str(app))}"\s*$', log, re.M), log
    assert "does not support loading in subinterpreters" in log


NUMPY_APP = '''
import ngx
import numpy
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%d in %r" % (numpy.arange(4).sum(), ngx.interpreter)).encode()]
'''


def numpy_or_skip():
    if workers_python() != sys.version_info[:2]:
        pytest.skip("numpy is Debian's, for its Python only")
    pytest.importorskip("numpy")


def test_numpy_in_two_groups_is_a_clean_500(nginx, tmp_path):
    """Debian's numpy 1.24 loads in one interpreter per process: the first
    group has it, the second falls back to main, where it cannot load
    either: a 500 with the reason, and the workers live on."""
    numpy_or_skip()
    app = tmp_path / "np_app.py"
    app.write_text(NUMPY_APP)
    srv = nginx(server=(
        f"location /a {{ wsgi_application_group a; wsgi_pass {app}; }}\n"
        f"location /b {{ wsgi_application_group b; wsgi_pass {app}; }}\n"
        f"location /c {{ wsgi_application_group c; wsgi_pass {app}; }}\n"))
    workers = srv.worker_pids()
    r = srv.get("/a")
    assert r.status == 200 and r.text == "6 in 'a'", r.text
    for path in ("/b", "/c", "/b"):
        assert srv.get(path).status == 500
    assert srv.get("/a").text == "6 in 'a'"
    assert srv.worker_pids() == workers
    log = srv.error_log()
    assert re.search(r'\[warn\] .*extension module "numpy\.[\w.]+" cannot be '
                     r'loaded in the sub-interpreter of application group '
                     r'"b"', log), log
    assert "Interpreter change detected" in log
    srv.stop()
    assert "exited on signal" not in srv.error_log()


def test_numpy_groups_falling_back_to_main_share_it(nginx, tmp_path):
    """With numpy first imported in main, the groups that need it fall
    back there and serve."""
    numpy_or_skip()
    app = tmp_path / "np_app.py"
    app.write_text(NUMPY_APP)
    srv = nginx(server=(
        f"location /m {{ wsgi_pass {app}; }}\n"
        f"location /a {{ wsgi_application_group a; wsgi_pass {app}; }}\n"
        f"location /b {{ wsgi_application_group b; wsgi_pass {app}; }}\n"))
    for path in ("/m", "/a", "/b"):
        r = srv.get(path)
        assert r.status == 200 and r.text == "6 in ''", (path, r.text)
    log = srv.error_log()
    for group in "ab":
        assert re.search(rf'extension module "numpy\.[\w.]+" cannot be '
                         rf'loaded in the sub-interpreter of application '
                         rf'group "{group}", for "[^"]+": the application '
                         rf'runs in the main interpreter', log), log


# -- two Django sites ---------------------------------------------------------

def django_site(root, name):
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "settings.py").write_text(f'''
SECRET_KEY = "test-only-{name}"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "{name}.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {{}}
SITE_TITLE = "{name} title"
''')
    (pkg / "urls.py").write_text('''
from django.conf import settings
from django.http import JsonResponse
from django.urls import path
import ngx

def info(request):
    return JsonResponse({"title": settings.SITE_TITLE,
                         "settings": settings.SETTINGS_MODULE,
                         "interpreter": ngx.interpreter})

urlpatterns = [path("", info)]
''')
    wsgi = root / f"{name}_wsgi.py"
    wsgi.write_text(f'''
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{name}.settings")
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
''')
    return wsgi


def test_two_django_sites_with_their_own_settings(nginx, tmp_path):
    pytest.importorskip("django")
    if workers_python() != sys.version_info[:2]:
        pytest.skip("Django is Debian's, for its Python only")
    a = django_site(tmp_path, "site_a")
    b = django_site(tmp_path, "site_b")
    srv = nginx(http=f"wsgi_python_path {tmp_path};",
                server=(f"location /a/ {{ wsgi_application_group a; "
                        f"wsgi_pass {a}; }}\n"
                        f"location /b/ {{ wsgi_application_group b; "
                        f"wsgi_pass {b}; }}\n"))
    for _ in range(2):
        ja = srv.get_json("/a/")
        jb = srv.get_json("/b/")
        assert ja == {"title": "site_a title", "settings": "site_a.settings",
                      "interpreter": "a"}
        assert jb == {"title": "site_b title", "settings": "site_b.settings",
                      "interpreter": "b"}


def test_two_django_sites_collide_in_one_interpreter(nginx, tmp_path):
    """Why groups exist: without them the second site gets the first's
    settings (os.environ.setdefault in a shared process)."""
    pytest.importorskip("django")
    if workers_python() != sys.version_info[:2]:
        pytest.skip("Django is Debian's, for its Python only")
    a = django_site(tmp_path, "site_a")
    b = django_site(tmp_path, "site_b")
    srv = nginx(http=f"wsgi_python_path {tmp_path};",
                server=(f"location /a/ {{ wsgi_pass {a}; }}\n"
                        f"location /b/ {{ wsgi_pass {b}; }}\n"))
    assert srv.get_json("/b/")["settings"] == "site_a.settings"


def test_middleware_imported_in_the_groups_interpreter(nginx, tmp_path):
    (tmp_path / "count_mw.py").write_text('''
built = 0
def middleware(app):
    global built
    built += 1
    n = built
    def wrapped(environ, start_response):
        def sr(status, headers, exc_info=None):
            return start_response(status, headers + [("X-Built", str(n))],
                                  exc_info)
        return app(environ, sr)
    return wrapped
''')
    srv = nginx(http=f"wsgi_python_path {{apps}}/interp:{tmp_path};"
                     "wsgi_middleware count_mw;",
                server=(loc("a", "wsgi_application_group a;")
                        + loc("b", "wsgi_application_group b;")))
    # each interpreter imported its own count_mw: each built one stack
    assert srv.get("/a").header("X-Built") == "1"
    assert srv.get("/b").header("X-Built") == "1"


LATE_APP = '''
import os
import time
if os.path.exists("{flag}"):
    raise RuntimeError("not yet")
time.sleep(0.3)
import {module}
def application(environ, start_response):
    import ngx  # the interpreter the request runs in, not the script's
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("in %r" % ngx.interpreter).encode()]
'''


def test_fallback_at_request_time(nginx, tmp_path):
    """A script whose first import failed is imported again by requests,
    on pool threads, several at once: the fallback moves it, and the
    requests waiting for that import, to the main interpreter."""
    if workers_python() >= (3, 12):
        module = "_testsinglephase"
        main = ""
    else:
        numpy_or_skip()
        module = "numpy"
        # numpy loads in the first interpreter only: main, at start
        main = f"location /m {{ wsgi_pass {tmp_path}/np_app.py; }}\n"
        (tmp_path / "np_app.py").write_text(NUMPY_APP)
    flag = tmp_path / "not-yet"
    flag.write_text("")
    app = tmp_path / "late_app.py"
    app.write_text(LATE_APP.format(flag=flag, module=module))
    srv = nginx(server=main + (
        f"location /late {{ wsgi_application_group late; "
        f"wsgi_pass {app}; }}\n"))
    assert srv.get("/late").status == 500
    flag.unlink()

    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        results = list(ex.map(lambda _: srv.get("/late"), range(12)))
    for r in results:
        assert r.status == 200 and r.text == "in ''", (r.status, r.text)
    assert re.search(rf'extension module "{module}[\w.]*" cannot be loaded '
                     rf'in the sub-interpreter of application group "late", '
                     rf'for "{re.escape(str(app))}": the application runs '
                     rf'in the main interpreter', srv.error_log())
