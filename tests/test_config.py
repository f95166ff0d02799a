"""Directives: wsgi_pass, wsgi_python_path/home/optimize, the response and
thread pool directives, and every configuration error (nginx -t with the
[emerg] at the directive's file:line)."""

import os
import re
import shutil

import pytest

from harness import (APPS_DIR, assert_emerg_at, body_bytes, get, hdrs,
                     inline_mode, install_app, module_has_directive, url)


# -- wsgi_pass ---------------------------------------------------------------

def test_wsgi_pass_serves_app(nginx):
    srv = nginx(server="location / { wsgi_pass {apps}/hello.py; }")
    r = srv.get("/")
    assert r.status == 200
    assert r.body == b"Hello, World!\n"
    assert r.header("Content-Type") == "text/plain"


def test_wsgi_pass_default_callable_is_application(nginx):
    srv = nginx(server="location / { wsgi_pass {apps}/callables.py; }")
    r = srv.get("/")
    assert (r.status, r.body) == (200, b"application")


def test_wsgi_pass_callable_argument(nginx):
    srv = nginx(server="""
        location /a { wsgi_pass {apps}/callables.py other; }
        location /b { wsgi_pass {apps}/callables.py third_app; }
        location /c { wsgi_pass {apps}/callables.py application; }
    """)
    assert srv.get("/a").body == b"other"
    assert srv.get("/b").body == b"third_app"
    assert srv.get("/c").body == b"application"


def test_same_script_in_two_locations(nginx):
    # two wsgi_pass of one script, and two different scripts, in one server
    srv = nginx(server="""
        location /x { wsgi_pass {apps}/callables.py other; }
        location /y { wsgi_pass {apps}/callables.py other; }
        location /h { wsgi_pass {apps}/hello.py; }
    """)
    for _ in range(2):
        assert srv.get("/x").body == b"other"
        assert srv.get("/y").body == b"other"
        assert srv.get("/h").body == b"Hello, World!\n"


def test_wsgi_pass_wsgi_extension(nginx, tmp_path):
    app = tmp_path / "hello.wsgi"
    shutil.copy(APPS_DIR / "hello.py", app)
    srv = nginx(server=f"location / {{ wsgi_pass {app}; }}",
                prefix=tmp_path / "p")
    r = srv.get("/")
    assert (r.status, r.body) == (200, b"Hello, World!\n")


def test_wsgi_pass_relative_path_resolves_against_prefix(nginx, tmp_path):
    prefix = tmp_path / "prefix"
    prefix.mkdir()
    # only in the prefix, not in prefix/conf nor in nginx's cwd
    shutil.copy(APPS_DIR / "callables.py", prefix / "rel_app.py")
    srv = nginx(server="location / { wsgi_pass rel_app.py other; }",
                prefix=prefix)
    r = srv.get("/")
    assert (r.status, r.body) == (200, b"other")


def test_wsgi_pass_relative_subdir(nginx, tmp_path):
    prefix = tmp_path / "prefix"
    (prefix / "apps").mkdir(parents=True)
    shutil.copy(APPS_DIR / "hello.py", prefix / "apps" / "h.py")
    srv = nginx(server="location / { wsgi_pass apps/h.py; }", prefix=prefix)
    assert srv.get("/").body == b"Hello, World!\n"


def test_wsgi_pass_in_if_in_location(nginx):
    srv = nginx(server="""
        location / {
            wsgi_pass {apps}/callables.py;
            if ($arg_alt) {
                wsgi_pass {apps}/callables.py other;
            }
        }
    """)
    assert srv.get("/").body == b"application"
    assert srv.get("/?alt=1").body == b"other"
    assert srv.get("/").body == b"application"


def test_location_without_wsgi_pass_is_not_handled(nginx, tmp_path):
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "static.txt").write_text("static file\n")
    srv = nginx(server="""
        location /app { wsgi_pass {apps}/hello.py; }
        location / { root {prefix}/html; }
    """)
    assert srv.get("/static.txt").body == b"static file\n"
    assert srv.get("/app").body == b"Hello, World!\n"
    assert srv.get("/missing").status == 404


def test_nginx_t_ok(nginx_t):
    rc, out, conf = nginx_t(
        http="wsgi_python_optimize 1; wsgi_python_path {apps};"
             " wsgi_var HTTP_A a; wsgi_pass_authorization on;",
        server="""
            wsgi_var B b;
            wsgi_pass_authorization off;
            location / {
                wsgi_pass {apps}/callables.py other;
                wsgi_var C $host;
                wsgi_pass_authorization on;
            }
        """)
    assert rc == 0, out
    assert "syntax is ok" in out and "test is successful" in out


def test_missing_script_is_emerg(nginx_t, tmp_path):
    missing = tmp_path / "no_such_app.py"
    rc, out, conf = nginx_t(
        server=f"location / {{\n wsgi_pass {missing};\n }}")
    msg = assert_emerg_at(rc, out, conf, "wsgi_pass")
    assert str(missing) in msg or "no_such_app.py" in out


def test_missing_relative_script_is_emerg(nginx_t):
    rc, out, conf = nginx_t(server="location / {\n wsgi_pass nope.py;\n }")
    assert_emerg_at(rc, out, conf, "wsgi_pass")


def test_script_in_missing_directory_is_emerg(nginx_t, tmp_path):
    rc, out, conf = nginx_t(
        server=f"location / {{\n wsgi_pass {tmp_path}/nodir/app.py;\n }}")
    assert_emerg_at(rc, out, conf, "wsgi_pass")


def test_directory_as_script_is_emerg(nginx_t, tmp_path):
    d = tmp_path / "adir.py"
    d.mkdir()
    rc, out, conf = nginx_t(server=f"location / {{\n wsgi_pass {d};\n }}")
    assert_emerg_at(rc, out, conf, "wsgi_pass")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads mode 000 files")
def test_unreadable_script_is_emerg(nginx_t, tmp_path):
    app = tmp_path / "secret.py"
    shutil.copy(APPS_DIR / "hello.py", app)
    app.chmod(0)
    rc, out, conf = nginx_t(server=f"location / {{\n wsgi_pass {app};\n }}")
    assert_emerg_at(rc, out, conf, "wsgi_pass")


def test_missing_script_server_does_not_start(nginx_t, tmp_path):
    # the error is detected at configuration time, second location
    rc, out, conf = nginx_t(server=f"""
        location /ok {{ wsgi_pass {APPS_DIR}/hello.py; }}
        location /bad {{
            wsgi_pass {tmp_path}/missing.py;
        }}""")
    assert_emerg_at(rc, out, conf, f"wsgi_pass {tmp_path}/missing.py")


def test_wsgi_pass_three_args_is_emerg(nginx_t):
    rc, out, conf = nginx_t(server="location / {\n"
                            " wsgi_pass {apps}/hello.py application x;\n }")
    assert_emerg_at(rc, out, conf, "wsgi_pass",
                    r'invalid number of arguments in "wsgi_pass"')


def test_wsgi_pass_no_args_is_emerg(nginx_t):
    rc, out, conf = nginx_t(server="location / {\n wsgi_pass;\n }")
    assert_emerg_at(rc, out, conf, "wsgi_pass",
                    r'invalid number of arguments in "wsgi_pass"')


def test_wsgi_pass_not_allowed_in_server(nginx_t):
    rc, out, conf = nginx_t(server="wsgi_pass {apps}/hello.py;")
    assert_emerg_at(rc, out, conf, "wsgi_pass", r"not allowed here")


def test_wsgi_var_one_arg_is_emerg(nginx_t):
    rc, out, conf = nginx_t(server="location / {\n"
                            " wsgi_pass {apps}/hello.py;\n"
                            " wsgi_var ONLY_NAME;\n }")
    assert_emerg_at(rc, out, conf, "wsgi_var",
                    r'invalid number of arguments in "wsgi_var"')


def test_wsgi_var_three_args_is_emerg(nginx_t):
    rc, out, conf = nginx_t(http="wsgi_var A b c;")
    assert_emerg_at(rc, out, conf, "wsgi_var",
                    r'invalid number of arguments in "wsgi_var"')


@pytest.mark.parametrize("value", ["5", "-1", "3", "abc"])
def test_wsgi_python_optimize_invalid_is_emerg(nginx_t, value):
    rc, out, conf = nginx_t(http=f"wsgi_python_optimize {value};")
    assert_emerg_at(rc, out, conf, "wsgi_python_optimize")


def test_wsgi_python_optimize_not_allowed_in_server(nginx_t):
    rc, out, conf = nginx_t(server="wsgi_python_optimize 1;")
    assert_emerg_at(rc, out, conf, "wsgi_python_optimize", r"not allowed here")


def test_wsgi_python_path_not_allowed_in_if(nginx_t):
    rc, out, conf = nginx_t(server="location / {\n if ($arg_x) {\n"
                            " wsgi_python_path /tmp;\n }\n }")
    assert_emerg_at(rc, out, conf, "wsgi_python_path", r"not allowed here")


def test_wsgi_python_home_not_allowed_in_server(nginx_t):
    rc, out, conf = nginx_t(server="wsgi_python_home /usr;")
    assert_emerg_at(rc, out, conf, "wsgi_python_home", r"not allowed here")


def test_wsgi_pass_authorization_invalid_value(nginx_t):
    rc, out, conf = nginx_t(server="wsgi_pass_authorization maybe;")
    assert_emerg_at(rc, out, conf, "wsgi_pass_authorization",
                    r'invalid value "maybe"')


# -- interpreter settings ----------------------------------------------------

def test_wsgi_python_optimize_default_0(nginx):
    srv = nginx(server="location / { wsgi_pass {apps}/pyinfo_app.py; }")
    info = srv.get_json("/")
    assert info["optimize"] == 0
    assert info["assert_enabled"] is True
    assert info["docstring"] == "docstring present"


def test_wsgi_python_optimize_1(nginx):
    srv = nginx(http="wsgi_python_optimize 1;",
                server="location / { wsgi_pass {apps}/pyinfo_app.py; }")
    info = srv.get_json("/")
    assert info["optimize"] == 1
    assert info["assert_enabled"] is False
    assert info["docstring"] == "docstring present"


def test_wsgi_python_optimize_2(nginx):
    srv = nginx(http="wsgi_python_optimize 2;",
                server="location / { wsgi_pass {apps}/pyinfo_app.py; }")
    info = srv.get_json("/")
    assert info["optimize"] == 2
    assert info["docstring"] is None


def test_wsgi_python_path_makes_module_importable(nginx, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "ngxwsgi_testmod.py").write_text("VALUE = 'from lib'\n")
    srv = nginx(http=f"wsgi_python_path {lib};",
                server="location / { wsgi_pass {apps}/pyinfo_app.py; }",
                prefix=tmp_path / "p")
    info = srv.get_json("/?import=ngxwsgi_testmod")
    assert info["import"] == {"value": "from lib",
                              "file": str(lib / "ngxwsgi_testmod.py")}
    assert str(lib) in info["path"]


def test_wsgi_python_path_module_imported_by_app_at_import(nginx, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "ngxwsgi_dep.py").write_text("VALUE = 42\n")
    app = install_app("import_module_app.py", tmp_path,
                      MODULE="ngxwsgi_dep")
    srv = nginx(http=f"wsgi_python_path {lib};",
                server=f"location / {{ wsgi_pass {app}; }}",
                prefix=tmp_path / "p")
    r = srv.get("/")
    assert r.status == 200, srv.logs_tail()
    assert r.json() == {"value": 42}


def test_wsgi_python_path_several_dirs_prepended_in_order(nginx, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "ngxwsgi_shadow.py").write_text("VALUE = 'a'\n")
    (b / "ngxwsgi_shadow.py").write_text("VALUE = 'b'\n")
    (b / "ngxwsgi_only_b.py").write_text("VALUE = 'only b'\n")
    # a stdlib-shadowing module proves "prepended" (before the stdlib)
    (b / "colorsys.py").write_text("VALUE = 'shadowed stdlib'\n")
    srv = nginx(http=f"wsgi_python_path {a}:{b};",
                server="location / { wsgi_pass {apps}/pyinfo_app.py; }",
                prefix=tmp_path / "p")
    info = srv.get_json("/?import=ngxwsgi_shadow")
    assert info["import"]["value"] == "a"
    assert srv.get_json("/?import=ngxwsgi_only_b")["import"]["value"] \
        == "only b"
    assert srv.get_json("/?import=colorsys")["import"]["value"] \
        == "shadowed stdlib"
    path = info["path"]
    assert path.index(str(a)) < path.index(str(b))
    stdlib = [p for p in path if p.rstrip("/").endswith("python3.11")]
    assert stdlib and path.index(str(b)) < path.index(stdlib[0]), path


def test_wsgi_python_home_usr(nginx):
    srv = nginx(http="wsgi_python_home /usr;",
                server="location / { wsgi_pass {apps}/pyinfo_app.py; }")
    info = srv.get_json("/")
    assert info["prefix"] == "/usr"
    assert info["version"][:2] == [3, 11]
    # the stdlib works (json, threading were imported by the app)
    assert any(p.startswith("/usr/lib/python3") for p in info["path"])


def test_python_version_is_system_python(nginx):
    srv = nginx(server="location / { wsgi_pass {apps}/pyinfo_app.py; }")
    info = srv.get_json("/")
    assert info["version"][:2] == [3, 11]
    assert info["pid"] != info["ppid"]


# -- response and output directives ------------------------------------------


NEW_DIRECTIVES = [
    "wsgi_allow_ranges on;",
    "wsgi_cache_validation off;",
    "wsgi_optimize_send_headers on;",
    "wsgi_output_buffering on;",
    "wsgi_write_buffering on;",
    "wsgi_write_buffer_size 8k;",
    "wsgi_temp_path {prefix}/wt;",
    "wsgi_temp_path {prefix}/wt 1 2;",
]


@pytest.mark.parametrize("level", ["http", "server", "location"])
@pytest.mark.parametrize("directive", NEW_DIRECTIVES)
def test_new_directive_accepted(nginx_t, directive, level):
    loc = "location / { wsgi_pass {apps}/feat_app.py; %s }"
    kw = {"http": {"http": directive, "server": loc % ""},
          "server": {"server": directive + "\n" + loc % ""},
          "location": {"server": loc % directive}}[level]
    rc, out, conf = nginx_t(**kw)
    assert rc == 0, out


@pytest.mark.parametrize("directive, msg", [
    ("wsgi_write_buffer_size 0;",
     r'"wsgi_write_buffer_size" directive must be positive'),
    ("wsgi_allow_ranges maybe;",
     r'invalid value "maybe" in "wsgi_allow_ranges" directive'),
    ("wsgi_write_buffer_size lots;",
     r'"wsgi_write_buffer_size" directive invalid value'),
    ("wsgi_temp_path /tmp/wt 1 2 3 4;",
     r'invalid number of arguments in "wsgi_temp_path" directive'),
])
def test_new_directive_invalid(nginx_t, directive, msg):
    rc, out, conf = nginx_t(server="location / {\n"
                                   " wsgi_pass {apps}/feat_app.py;\n"
                                   f" {directive}\n }}")
    assert_emerg_at(rc, out, conf, directive.split()[0], msg)


def test_temp_path_that_cannot_be_created(nginx_t, tmp_path):
    # nginx creates wsgi_temp_path at start; a missing parent is an error
    missing = tmp_path / "no" / "such" / "dir"
    rc, out, conf = nginx_t(server="location / {\n"
                                   " wsgi_pass {apps}/feat_app.py;\n"
                                   f" wsgi_temp_path {missing};\n }}")
    assert rc != 0, out
    assert re.search(r'\[emerg\] .*mkdir\(\) "%s" failed' % re.escape(
        str(missing)), out), out


def test_new_directives_inherited(nginx):
    app = "wsgi_pass {apps}/feat_app.py bare;"
    srv = nginx(http="wsgi_allow_ranges on; wsgi_write_buffering on;",
                server=("wsgi_cache_validation off;\n"
                        f"location / {{ {app} }}\n"
                        f"location /x/ {{ {app} wsgi_allow_ranges off; "
                        "wsgi_cache_validation on; }\n"))
    data = body_bytes(12, 10_000)
    path = url("/list", size=10_000, seed=12, cl=1, etag='"abc123"')
    p = get(srv, path, extra=hdrs(Range="bytes=0-9"))
    assert (p.code, p.body) == (206, data[:10]), p
    p = get(srv, path, extra=hdrs(If_None_Match='"abc123"'))
    assert (p.code, p.body) == (200, data), p
    p = get(srv, url("/writes", ret="list"))
    assert p.all("Content-Length") == ["100003"], p
    # overridden in the location
    p = get(srv, "/x" + path, extra=hdrs(Range="bytes=0-9"))
    assert (p.code, p.body) == (200, data), p
    p = get(srv, "/x" + path, extra=hdrs(If_None_Match='"abc123"'))
    assert p.code == 304, p


# -- thread pools, buffers, callables ----------------------------------------


def test_unknown_thread_pool(nginx_t):
    rc, out, conf = nginx_t(server="location / {\n"
                                   " wsgi_pass {apps}/hello.py;\n"
                                   " wsgi_thread_pool nosuch;\n }")
    assert_emerg_at(rc, out, conf, "wsgi_thread_pool nosuch",
                    r'unknown thread pool "nosuch"')


def test_thread_pool_declared_in_main_is_accepted(nginx_t):
    rc, out, conf = nginx_t(main="thread_pool other threads=2;",
                            server="location / {\n"
                                   " wsgi_pass {apps}/hello.py;\n"
                                   " wsgi_thread_pool other;\n }")
    assert rc == 0, out


def test_duplicate_wsgi_thread_pool(nginx_t):
    rc, out, conf = nginx_t(main="thread_pool t threads=4;",
                            server="location / {\n"
                                   " wsgi_pass {apps}/hello.py;\n"
                                   " wsgi_thread_pool off;\n"
                                   " wsgi_thread_pool t;\n }")
    assert_emerg_at(rc, out, conf, "wsgi_thread_pool t;",
                    r'"wsgi_thread_pool" directive is duplicate')


@pytest.mark.parametrize("value,msg", [
    ("0", r'"wsgi_buffer_size" directive must be positive'),
    ("abc", r'"wsgi_buffer_size" directive invalid value'),
    ("-1", r'"wsgi_buffer_size" directive invalid value'),
])
def test_wsgi_buffer_size_invalid(nginx_t, value, msg):
    rc, out, conf = nginx_t(server="location / {\n"
                                   " wsgi_pass {apps}/hello.py;\n"
                                   f" wsgi_buffer_size {value};\n }}")
    assert_emerg_at(rc, out, conf, "wsgi_buffer_size", msg)


def test_wsgi_python_home_missing(nginx_t):
    rc, out, conf = nginx_t(http="wsgi_python_home /nonexistent;",
                            server="location / {\n"
                                   " wsgi_pass {apps}/hello.py;\n }")
    assert_emerg_at(rc, out, conf, "wsgi_python_home",
                    r'"/nonexistent" failed \(2: No such file')


def test_wsgi_python_home_not_a_directory(nginx_t):
    rc, out, conf = nginx_t(http="wsgi_python_home {apps}/hello.py;",
                            server="location / {\n"
                                   " wsgi_pass {apps}/hello.py;\n }")
    assert_emerg_at(rc, out, conf, "wsgi_python_home",
                    r'hello\.py" is not a directory')


@pytest.mark.parametrize("name", ["1abc", "a..b", "a.", ".a", "a-b",
                                  "a.1b", "a b"])
def test_wsgi_pass_invalid_callable_name(nginx_t, name):
    rc, out, conf = nginx_t(server="location / {\n"
                                   f' wsgi_pass {{apps}}/hello.py "{name}";'
                                   "\n }")
    assert_emerg_at(rc, out, conf, "wsgi_pass",
                    r'invalid callable name "%s"' % re.escape(name))


@pytest.mark.parametrize("name", ["application", "_a1.b_2.c"])
def test_wsgi_pass_valid_callable_name(nginx_t, name):
    rc, out, conf = nginx_t(server="location / {\n"
                                   f" wsgi_pass {{apps}}/hello.py {name};"
                                   "\n }")
    assert rc == 0, out


def test_declared_wsgi_pool_starts_and_serves(nginx):
    srv = nginx(main="thread_pool wsgi threads=2;",
                server="location / { wsgi_pass {apps}/env_app.py; }")
    e = srv.get_json("/")
    assert e["wsgi.multithread"]["repr"] == str(not inline_mode())


def test_wsgi_thread_pool_wsgi_names_the_module_pool(nginx, nginx_t):
    # "wsgi" is the module's own pool even when no thread_pool declares it
    rc, out, conf = nginx_t(server="wsgi_thread_pool wsgi;\n"
                                   "location / { wsgi_pass {apps}/hello.py; }")
    assert rc == 0, out
    env = "wsgi_pass {apps}/env_app.py;"
    srv = nginx(server=(
        f"location /a {{ {env} wsgi_thread_pool wsgi; }}\n"
        f"location /b {{ {env} wsgi_thread_pool off; }}\n"))
    assert srv.get_json("/a")["wsgi.multithread"]["repr"] == "True"
    assert srv.get_json("/b")["wsgi.multithread"]["repr"] == "False"


@pytest.mark.parametrize("value,msg", [
    ("0", r"must be equal to or greater than 1"),
    ("abc", r'"wsgi_max_queue" directive invalid number'),
])
def test_wsgi_max_queue_invalid(nginx_t, value, msg):
    if not module_has_directive(nginx_t, "wsgi_max_queue 1;"):
        pytest.skip("no wsgi_max_queue in this module")
    rc, out, conf = nginx_t(server="location / {\n"
                                   " wsgi_pass {apps}/hello.py;\n"
                                   f" wsgi_max_queue {value};\n }}")
    assert_emerg_at(rc, out, conf, "wsgi_max_queue", msg)


@pytest.mark.parametrize("value", ["low", "19", ""])
def test_wsgi_thread_priority_invalid(nginx_t, value):
    rc, out, conf = nginx_t(http=f"wsgi_thread_priority {value};\n",
                            server="location / { wsgi_pass {apps}/hello.py; }")
    if value:
        assert_emerg_at(rc, out, conf, "wsgi_thread_priority",
                        rf'invalid value "{value}"')
    else:
        assert_emerg_at(rc, out, conf, "wsgi_thread_priority",
                        r"invalid number of arguments")


def test_wsgi_thread_priority_is_for_the_http_block_only(nginx_t):
    rc, out, conf = nginx_t(server="location / {\n"
                                   " wsgi_pass {apps}/hello.py;\n"
                                   " wsgi_thread_priority idle;\n }")
    assert_emerg_at(rc, out, conf, "wsgi_thread_priority",
                    r'"wsgi_thread_priority" directive is not allowed here')
