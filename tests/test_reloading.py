"""Reloading a changed script (issue #16): wsgi_script_reloading and
wsgi_reload_mechanism module, interpreter and process.

The script is tests/apps/reload_app.py with its VERSION filled in; a new
version is written to a temporary file and renamed over the script, as a
deploy should do.  A worker looks at the script at most once a second
(NGX_HTTP_WSGI_RELOAD_CHECK), so a change shows within a second and a bit.
"""

import http.client
import os
import re
import statistics
import threading
import time

import pytest

from harness import (APPS_DIR, Parsed, assert_emerg_at, conf_line,
                     pid_alive, read_all, req, send, subinterpreter_mode,
                     wait_for)

CHECK = 1.0          # s, the rate limit of the look at a script
MARGIN = 0.5         # s, for the import and a loaded machine

# the "interpreter" mechanism needs its application in a sub-interpreter
INTERPRETER = "wsgi_reload_mechanism interpreter; wsgi_application_group g;"
NEW_INTERP = (r'\[notice\] .*wsgi: application group "g" goes on in a new '
              r'interpreter, the one before ends after its requests in flight')
ENDED = r'\[info\] .*wsgi: the interpreter replaced in application group "g" ended'


def script_text(version, imports=False, body=None):
    text = (APPS_DIR / "reload_app.py").read_text()
    text = text.replace("@VERSION@", str(version))
    text = text.replace("# @IMPORT@", "import reload_mod" if imports else "")
    if body is not None:
        text += "\n" + body + "\n"
    return text


def deploy(path, text):
    """Write text to a new file and rename it over path."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def version_of(srv, path="/"):
    r = srv.get(path)
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    return int(r.text.split()[0])


def wait_version(srv, version, timeout=CHECK + MARGIN + 3):
    return wait_for(lambda: version_of(srv) == version, timeout=timeout,
                    interval=0.05)


def wait_log(srv, regex, timeout=CHECK + MARGIN + 3):
    """Requests until the error log matches: a worker looks at its script
    only when a request comes.  Every answer must be version 1's."""
    rx = re.compile(regex, re.M)
    deadline = time.monotonic() + timeout
    while not rx.search(srv.error_log()):
        if time.monotonic() > deadline:
            return False
        assert version_of(srv) == 1
        time.sleep(0.05)
    return True


def server(nginx, tmp_path, extra="", http="", workers=1, body=None, **kw):
    script = tmp_path / "app.py"
    script.write_text(script_text(1, body=body, **kw))
    srv = nginx(http=http, server=f"""
        location / {{
            wsgi_script_reloading on;
            {extra}
            wsgi_pass {script};
        }}""", workers=workers, prefix=tmp_path / "p")
    return srv, script


def test_changed_script_is_reloaded(nginx, tmp_path):
    srv, script = server(nginx, tmp_path)
    assert version_of(srv) == 1

    deploy(script, script_text(2))
    assert wait_version(srv, 2), srv.logs_tail()
    assert srv.wait_log(r'\[notice\] .*wsgi: reloaded "application" from '
                        + re.escape(f'"{script}"'))
    # and again: each version is a fresh module
    deploy(script, script_text(3))
    assert wait_version(srv, 3), srv.logs_tail()
    assert "failed to reload" not in srv.error_log()
    # once a version: not at the first look, not again for the same file
    time.sleep(CHECK + 0.1)
    assert version_of(srv) == 3
    assert srv.error_log().count("wsgi: reloaded") == 2


def test_script_gone_for_a_while(nginx, tmp_path):
    """A script that disappears: one warning, the application goes on; a
    script that comes back is a new version."""
    srv, script = server(nginx, tmp_path)
    assert version_of(srv) == 1
    script.rename(tmp_path / "away.py")
    assert wait_log(srv, r"\[warn\] .*wsgi: stat\(\) " + re.escape(
        f'"{script}"') + r" failed, the application goes on as it is "
        r"\(2: No such file or directory\)"), srv.logs_tail()
    time.sleep(CHECK + 0.1)
    assert version_of(srv) == 1
    assert srv.error_log().count("failed, the application goes on") == 1

    deploy(script, script_text(2))
    assert wait_version(srv, 2), srv.logs_tail()


def test_rewritten_in_place_is_reloaded(nginx, tmp_path):
    """The same inode, another size: written in place, as an editor may."""
    srv, script = server(nginx, tmp_path)
    assert version_of(srv) == 1
    script.write_text(script_text(2) + "# longer\n")
    assert wait_version(srv, 2), srv.logs_tail()


def test_off_by_default(nginx, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(script_text(1))
    srv = nginx(server=f"location / {{ wsgi_pass {script}; }}")
    assert version_of(srv) == 1
    deploy(script, script_text(2))
    time.sleep(CHECK + MARGIN)
    for _ in range(5):
        assert version_of(srv) == 1
        time.sleep(0.1)
    assert "reloaded" not in srv.error_log()


def test_reloading_is_per_application(nginx, tmp_path):
    """One script in two locations, reloading on in one: two applications,
    and only the one that reloads sees the new version."""
    script = tmp_path / "app.py"
    script.write_text(script_text(1))
    srv = nginx(server=f"""
        location /on/ {{ wsgi_script_reloading on; wsgi_pass {script}; }}
        location /off/ {{ wsgi_pass {script}; }}""")
    assert version_of(srv, "/on/") == 1 and version_of(srv, "/off/") == 1
    deploy(script, script_text(2))
    assert wait_for(lambda: version_of(srv, "/on/") == 2,
                    timeout=CHECK + MARGIN + 3), srv.logs_tail()
    assert version_of(srv, "/off/") == 1


def test_reload_in_application_group(nginx, tmp_path):
    srv, script = server(nginx, tmp_path,
                         extra="wsgi_application_group reloaded;")
    assert version_of(srv) == 1
    deploy(script, script_text(2))
    assert wait_version(srv, 2), srv.logs_tail()
    assert srv.wait_log(r'wsgi: reloaded "application" from "[^"]*" in '
                        r'application group "reloaded"')


def importing_server(nginx, tmp_path, extra="", text='VALUE = "one"\n'):
    """A server whose script imports reload_mod, with text, from a
    wsgi_python_path directory, and answers with its VALUE "one":
    (srv, script, the module's file)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    mod = lib / "reload_mod.py"
    mod.write_text(text)
    srv, script = server(nginx, tmp_path, http=f"wsgi_python_path {lib};",
                         extra=extra, imports=True)
    r = srv.get("/").text.split()
    assert r[0] == "1" and r[2] == "one", srv.logs_tail()
    return srv, script, mod


def test_imported_module_is_not_reloaded(nginx, tmp_path):
    srv, script, mod = importing_server(nginx, tmp_path)

    mod.write_text('VALUE = "two"\n')
    deploy(script, script_text(2, imports=True))
    assert wait_version(srv, 2), srv.logs_tail()
    # the new script's import found the module already there
    assert srv.get("/").text.split()[2] == "one"


def test_imported_module_is_reloaded_under_interpreter(nginx, tmp_path):
    """A new interpreter imports everything again: the module the script
    imports shows its new text, and the interpreter before ends once its
    requests are done, running its atexit handlers."""
    srv, script, mod = importing_server(
        nginx, tmp_path, extra=INTERPRETER, text=(
            'import atexit\n'
            'VALUE = "one"\n'
            'atexit.register(print, "atexit of", VALUE)\n'))

    mod.write_text('VALUE = "two"\n')
    deploy(script, script_text(2, imports=True))
    assert wait_version(srv, 2), srv.logs_tail()
    assert srv.get("/").text.split()[2] == "two"
    assert srv.wait_log(NEW_INTERP), srv.logs_tail()
    assert srv.wait_log(
        r'wsgi: reloaded "application" from "[^"]*" in application group '
        r'"g"'), srv.logs_tail()
    # the next request's thread ends the old one
    assert wait_for(lambda: srv.get("/").status == 200
                    and re.search(ENDED, srv.error_log()), timeout=5), \
        srv.logs_tail()
    assert srv.wait_log(r"\[error\] .*wsgi: atexit of one"), srv.logs_tail()
    assert srv.error_log().count("atexit of") == 1


def test_interpreter_reloads_every_application_of_the_group(nginx, tmp_path):
    """Two scripts in one group: a change of one gives both a new
    interpreter, where both see the new module."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "reload_mod.py").write_text('VALUE = "one"\n')
    a = tmp_path / "a.py"
    b = tmp_path / "b.py"
    a.write_text(script_text(1, imports=True))
    b.write_text(script_text(1, imports=True))
    srv = nginx(http=f"wsgi_python_path {lib};", server=f"""
        location /a {{
            wsgi_script_reloading on;
            {INTERPRETER}
            wsgi_pass {a};
        }}
        location /b {{
            wsgi_application_group g;
            wsgi_pass {b};
        }}""")
    assert srv.get("/a").text.split()[2] == "one"
    assert srv.get("/b").text.split()[2] == "one"

    # another size: a .pyc of the same second and size would be taken
    (lib / "reload_mod.py").write_text('VALUE = "second"\n')
    deploy(a, script_text(2, imports=True))
    assert wait_for(lambda: version_of(srv, "/a") == 2,
                    timeout=CHECK + MARGIN + 3), srv.logs_tail()
    assert srv.get("/b").text.split()[:3:2] == ["1", "second"]
    assert srv.error_log().count("wsgi: reloaded") == 2


def test_broken_imported_module_keeps_the_old_interpreter(nginx, tmp_path):
    """With "interpreter", a module the script imports that fails to import
    fails the reload: the old interpreter goes on, the failed version is not
    tried again, and the next one is."""
    srv, script, mod = importing_server(nginx, tmp_path, extra=INTERPRETER)

    mod.write_text('raise ImportError("half deployed")\n')
    deploy(script, script_text(2, imports=True))
    assert wait_log(srv, r"\[error\] .*wsgi: failed to reload script "
                    + re.escape(f'"{script}"') + r" in a new interpreter of "
                    r'application group "g", the interpreter loaded before '
                    r"goes on"), srv.logs_tail()
    assert re.search(r"wsgi: ImportError: half deployed", srv.error_log())
    assert re.search(r'wsgi:   File "' + re.escape(str(mod))
                     + r'", line 1', srv.error_log())
    time.sleep(CHECK + 0.1)
    r = srv.get("/").text.split()
    assert r[0] == "1" and r[2] == "one"
    assert srv.error_log().count("failed to reload script") == 1

    mod.write_text('VALUE = "three"\n')
    deploy(script, script_text(3, imports=True))
    assert wait_version(srv, 3), srv.logs_tail()
    assert srv.get("/").text.split()[2] == "three"


def test_interpreter_of_a_script_of_its_own(nginx, tmp_path):
    """With wsgi_enable_subinterpreters on, the script is its group: the
    mechanism needs no wsgi_application_group."""
    srv, script = server(nginx, tmp_path, extra=(
        "wsgi_enable_subinterpreters on; "
        "wsgi_reload_mechanism interpreter;"))
    assert version_of(srv) == 1
    deploy(script, script_text(2))
    assert wait_version(srv, 2), srv.logs_tail()
    assert srv.wait_log(r'wsgi: application group "' + re.escape(str(script))
                        + r'" goes on in a new interpreter'), srv.logs_tail()


def test_interpreter_names_its_group(nginx, tmp_path):
    srv, script = server(nginx, tmp_path, extra=INTERPRETER, body=(
        "import ngx\n"
        "def value():\n"
        "    return ngx.interpreter\n"))
    assert srv.get("/").text.split()[2] == "g"
    deploy(script, script_text(2, body=(
        "import ngx\n"
        "def value():\n"
        "    return ngx.interpreter + '2'\n")))
    assert wait_version(srv, 2), srv.logs_tail()
    assert srv.get("/").text.split()[2] == "g2"


MW = """
def middleware(app):
    def wrapped(environ, start_response):
        def sr(status, headers, exc_info=None):
            return start_response(status, headers + [("X-MW", "yes")],
                                  exc_info)
        return app(environ, sr)
    return wrapped
"""


def test_middleware_wraps_the_new_version(nginx, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "reload_mw.py").write_text(MW)
    srv, script = server(nginx, tmp_path, http=f"wsgi_python_path {lib};",
                         extra="wsgi_middleware reload_mw;")
    r = srv.get("/")
    assert r.header("X-MW") == "yes" and r.text.startswith("1 ")
    deploy(script, script_text(2))
    assert wait_version(srv, 2), srv.logs_tail()
    r = srv.get("/")
    assert r.header("X-MW") == "yes" and r.text.startswith("2 ")


BROKEN = [
    ("syntax", "def oops(:\n", r"SyntaxError"),
    ("raises", 'raise RuntimeError("broken version")\n',
     r"RuntimeError: broken version"),
    ("nocallable", "del application\n",
     r'callable "application" not found in'),
]


@pytest.mark.parametrize("mechanism", ["module", "interpreter"])
@pytest.mark.parametrize("kind,body,logged", BROKEN,
                         ids=[b[0] for b in BROKEN])
def test_broken_version_keeps_the_old_one(nginx, tmp_path, kind, body,
                                          logged, mechanism):
    srv, script = server(nginx, tmp_path, extra=(
        INTERPRETER if mechanism == "interpreter" else ""))
    assert version_of(srv) == 1

    deploy(script, script_text(2, body=body))
    assert wait_log(srv, r"wsgi: failed to reload script "
                    + re.escape(f'"{script}"')), srv.logs_tail()
    assert re.search(logged, srv.error_log()), srv.logs_tail()
    if kind != "nocallable":
        # where in the script, one line an entry
        assert re.search(r"wsgi:   File " + re.escape(f'"{script}"')
                         + r", line \d+", srv.error_log()), srv.logs_tail()
    if kind == "raises":
        assert "wsgi: Traceback (most recent call last):" in srv.error_log()

    # the old version goes on, and the failed one is not tried again
    deadline = time.monotonic() + CHECK * 2 + MARGIN
    while time.monotonic() < deadline:
        assert version_of(srv) == 1
        time.sleep(0.05)
    assert srv.error_log().count("failed to reload script") == 1

    # sys.modules holds the old module again: a good version loads
    deploy(script, script_text(3))
    assert wait_version(srv, 3), srv.logs_tail()
    assert srv.error_log().count("failed to reload script") == 1


def test_failed_reload_undoes_its_imports(nginx, tmp_path):
    """A module the broken version imported goes with it: the next version
    imports it afresh."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "reload_new.py").write_text('VALUE = "first"\n')
    srv, script = server(nginx, tmp_path, http=f"wsgi_python_path {lib};")
    assert version_of(srv) == 1
    deploy(script, script_text(
        2, body='import reload_new\nraise RuntimeError("after import")'))
    assert wait_log(srv, "RuntimeError: after import"), srv.logs_tail()
    assert srv.wait_log("failed reload of .* is undone: modules removed: 1")
    (lib / "reload_new.py").write_text('VALUE = "second"\n')
    deploy(script, script_text(3, body=(
        "import reload_new\n"
        "def value():\n"
        "    return reload_new.VALUE\n")))
    assert wait_version(srv, 3), srv.logs_tail()
    assert srv.get("/").text.split()[2] == "second"


# version 1 changes the script as soon as the module opens it to read it,
# once: an audit hook of the application sees the module's open()
TOUCH_ON_OPEN = """
import sys


def _touch(event, args):
    if (event == "open" and args and args[0] == __file__
            and os.path.exists(__file__ + ".touch")):
        os.unlink(__file__ + ".touch")
        with open(__file__, "a") as f:
            f.write("# touched while read\\n")


sys.addaudithook(_touch)
"""


def test_script_changed_while_read_is_read_again(nginx, tmp_path):
    srv, script = server(nginx, tmp_path, body=TOUCH_ON_OPEN)
    assert version_of(srv) == 1
    (tmp_path / "app.py.touch").write_text("")
    deploy(script, script_text(2))
    assert wait_log(srv, r"\[notice\] .*wsgi: script "
                    + re.escape(f'"{script}"')
                    + " changed while it was read, it is reloaded later"), \
        srv.logs_tail()
    assert script.read_text().endswith("# touched while read\n")
    # the next look sees the version as it is now, and loads it
    assert wait_version(srv, 2), srv.logs_tail()
    assert "failed to reload" not in srv.error_log()


def test_slow_write_in_place_never_fails_a_request(nginx, tmp_path):
    """A script written in place in pieces, with pauses: each half-written
    state either fails to load (and is logged) or is not read at all; no
    request fails, and the complete version is served in the end."""
    srv, script = server(nginx, tmp_path)
    assert version_of(srv) == 1
    text = script_text(2).encode()
    pieces = 8
    size = len(text) // pieces + 1

    def writer():
        with open(script, "wb") as f:
            for i in range(pieces):
                f.write(text[i * size:(i + 1) * size])
                f.flush()
                time.sleep(0.3)

    w = threading.Thread(target=writer)
    w.start()
    seen = set()
    deadline = time.monotonic() + pieces * 0.3 + CHECK + MARGIN + 3
    while time.monotonic() < deadline:
        v = version_of(srv)
        seen.add(v)
        if v == 2 and not w.is_alive():
            break
        time.sleep(0.05)
    w.join()
    assert seen <= {1, 2}
    assert wait_version(srv, 2), srv.logs_tail()


def start_stream(srv, go):
    """A /stream request from a client that does not read: the socket."""
    s = send(srv, req(f"/stream?go={go}"), rcvbuf=4096, timeout=30)
    time.sleep(0.3)
    return s


def finish_stream(s, go):
    go.write_text("go")
    data = read_all(s, 30)[0]
    s.close()
    p = Parsed(data)
    assert p.code == 200, p
    return p


def test_stream_in_flight_finishes_with_old_code(nginx, tmp_path):
    """The streaming response of version 1 goes on after version 2 took
    over, in the same worker, and ends with version 1's code."""
    srv, script = server(nginx, tmp_path)
    go = tmp_path / "go"
    pid = int(srv.get("/").text.split()[1])
    s = start_stream(srv, go)

    deploy(script, script_text(2))
    assert wait_version(srv, 2), srv.logs_tail()
    assert int(srv.get("/").text.split()[1]) == pid

    p = finish_stream(s, go)
    assert p.body.startswith(b"start 1\n")
    assert p.body.endswith(b"end 1\n"), p.body[-100:]
    assert version_of(srv) == 2


def test_stream_in_flight_keeps_its_interpreter(nginx, tmp_path):
    """Under "interpreter", a streaming response of version 1 goes on in
    the interpreter before, which ends only after it."""
    srv, script = server(nginx, tmp_path, extra=INTERPRETER)
    go = tmp_path / "go"
    s = start_stream(srv, go)

    deploy(script, script_text(2))
    assert wait_version(srv, 2), srv.logs_tail()
    assert srv.wait_log(NEW_INTERP), srv.logs_tail()
    for _ in range(10):
        assert version_of(srv) == 2
        time.sleep(0.05)
    assert not re.search(ENDED, srv.error_log()), srv.logs_tail()

    p = finish_stream(s, go)
    assert p.body.startswith(b"start 1\n")
    assert p.body.endswith(b"end 1\n"), p.body[-100:]
    assert wait_for(lambda: version_of(srv) == 2
                    and re.search(ENDED, srv.error_log()), timeout=5), \
        srv.logs_tail()


def test_interpreters_still_ending_hold_back_a_change(nginx, tmp_path):
    """Each version's stream keeps its interpreter: with four of them
    ending or serving, a fifth version waits, with one warning, until one
    has ended; then its slot serves the new interpreter."""
    srv, script = server(nginx, tmp_path, extra=INTERPRETER)
    streams = []
    for v in range(2, 6):
        go = tmp_path / f"go{v}"
        streams.append((start_stream(srv, go), go, v - 1))
        deploy(script, script_text(v))
        if v < 5:
            assert wait_version(srv, v), srv.logs_tail()
    assert srv.error_log().count("goes on in a new interpreter") == 3

    # versions 1, 2 and 3 are still in flight and 4 serves: 5 waits
    warned = (r'\[warn\] .*wsgi: script "[^"]*app\.py" changed, and '
              r'application group "g" waits for a new interpreter: the 4 '
              r'before have not ended')
    deadline = time.monotonic() + CHECK + MARGIN + 3
    while not re.search(warned, srv.error_log()):
        assert time.monotonic() < deadline, srv.logs_tail()
        assert version_of(srv) == 4
        time.sleep(0.05)
    for _ in range(10):
        assert version_of(srv) == 4
    assert srv.error_log().count("waits for a new interpreter") == 1

    s, go, v = streams.pop(0)
    p = finish_stream(s, go)
    assert p.body.endswith(b"end %d\n" % v), p.body[-100:]
    assert wait_version(srv, 5), srv.logs_tail()

    for s, go, v in streams:
        p = finish_stream(s, go)
        assert p.body.endswith(b"end %d\n" % v), p.body[-100:]
    assert wait_for(lambda: version_of(srv) == 5 and srv.error_log().count(
        "interpreter replaced in application") == 4, timeout=5), \
        srv.logs_tail()


DAEMON = """
import threading
import time


def _tick():
    while True:
        time.sleep(0.05)


threading.Thread(target=_tick, daemon=True).start()
"""


RUNNING = (r'\[notice\] .*wsgi: the interpreter replaced in application '
           r'group "g" is not ended yet, threads of the application run in it')


def test_interpreter_with_daemon_threads_is_left_running(nginx, tmp_path):
    """An interpreter whose daemon threads run cannot end: it is left as it
    is, with one notice, and the worker goes on, then exits cleanly."""
    srv, script = server(nginx, tmp_path, extra=INTERPRETER, body=DAEMON)
    assert version_of(srv) == 1
    deploy(script, script_text(2, body=DAEMON))
    assert wait_version(srv, 2), srv.logs_tail()
    assert wait_for(lambda: version_of(srv) == 2 and re.search(
        RUNNING, srv.error_log()), timeout=5), srv.logs_tail()
    # tried again each second, told once
    deadline = time.monotonic() + 2 * CHECK + 0.2
    while time.monotonic() < deadline:
        assert version_of(srv) == 2
        time.sleep(0.05)
    assert srv.error_log().count("is not ended yet") == 1
    assert not re.search(ENDED, srv.error_log())

    # and again: the next version gets another slot
    deploy(script, script_text(3, body=DAEMON))
    assert wait_version(srv, 3), srv.logs_tail()
    srv.stop()
    assert "exited on signal" not in srv.error_log()


WORKER = """
import threading
import time


def _work():
    while not os.path.exists(__file__ + ".go%d" % VERSION):
        time.sleep(0.02)


threading.Thread(target=_work).start()
"""


def test_interpreter_ends_when_its_threads_have(nginx, tmp_path):
    """A thread of the application (not a daemon) keeps the interpreter
    before from ending, without holding up the worker: it ends when the
    thread has."""
    srv, script = server(nginx, tmp_path, extra=INTERPRETER, body=WORKER)
    assert version_of(srv) == 1
    try:
        deploy(script, script_text(2, body=WORKER))
        assert wait_version(srv, 2), srv.logs_tail()
        assert wait_for(lambda: version_of(srv) == 2 and re.search(
            RUNNING, srv.error_log()), timeout=5), srv.logs_tail()
        for _ in range(20):
            started = time.monotonic()
            assert version_of(srv) == 2
            assert time.monotonic() - started < 2, "the worker waited"
            time.sleep(0.05)
        assert not re.search(ENDED, srv.error_log())

        script.with_name("app.py.go1").write_text("")
        assert wait_for(lambda: version_of(srv) == 2 and re.search(
            ENDED, srv.error_log()), timeout=CHECK + 3), srv.logs_tail()
    finally:
        script.with_name("app.py.go2").write_text("")
    srv.stop()
    assert "did not end" not in srv.error_log()


BLOCKS = """
import sys

_versioned = application


def application(environ, start_response):
    if environ["PATH_INFO"] != "/blocks":
        return _versioned(environ, start_response)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d %d.%d\\n" % ((sys.getallocatedblocks(),)
                              + sys.version_info[:2])]
"""


def test_ended_interpreter_leaves_no_objects(nginx, tmp_path):
    """An interpreter that ends frees the ngx module, its types and the
    objects its state keeps: the worker's Python blocks (CPython 3.11
    counts those of every interpreter) do not grow with each reload."""
    srv, script = server(nginx, tmp_path, extra=INTERPRETER, body=BLOCKS)
    assert version_of(srv) == 1
    if srv.get("/blocks").text.split()[1] != "3.11":
        # measured: _testcapi.run_in_subinterp() alone, in a loop, keeps
        # about 2,000 blocks an interpreter on 3.12 and 3,300 on 3.13
        pytest.skip("CPython 3.12 and later keep blocks of every "
                    "interpreter that ends")
    blocks = []
    for v in range(2, 12):
        deploy(script, script_text(v, body=BLOCKS))
        assert wait_version(srv, v), srv.logs_tail()
        assert wait_for(lambda: version_of(srv) == v and len(
            re.findall(ENDED, srv.error_log())) == v - 1, timeout=5), \
            srv.logs_tail()
        blocks.append(int(srv.get("/blocks").text.split()[0]))
    # the first reloads fill CPython's caches
    per_reload = (blocks[-1] - blocks[3]) / (len(blocks) - 4)
    assert per_reload < 40, blocks


def test_stream_in_flight_survives_the_process_mechanism(nginx, tmp_path):
    """A worker that retires for version 2 finishes its streaming response
    of version 1 before it exits, while the other worker, then the new
    ones, serve: a retiring worker takes no connection, so with a single
    worker new connections would wait in the listen queue meanwhile."""
    srv, script = server(nginx, tmp_path, workers=2,
                         extra="wsgi_reload_mechanism process;")
    go = tmp_path / "go"
    old = set(srv.worker_pids())
    s = start_stream(srv, go)

    deploy(script, script_text(2))
    seen = []

    def new_code_everywhere():
        r = srv.get("/")
        assert r.status == 200, r
        seen.append((r.text.split()[0], r.header("Refresh")))
        return [v for v, _ in seen[-20:]] == ["2"] * 20

    assert wait_for(new_code_everywhere, timeout=CHECK + MARGIN + 8,
                    interval=0.02), (seen[-30:], srv.logs_tail())
    assert all(v == "1" for v, refresh in seen if refresh == "0"), seen
    # the worker with the stream retired too, but lives until it is sent
    assert len(old & set(srv.worker_pids())) <= 1
    assert any(pid_alive(p) for p in old), "the stream's worker left"

    p = finish_stream(s, go)
    assert p.body.startswith(b"start 1\n")
    assert p.body.endswith(b"end 1\n"), p.body[-100:]
    assert wait_for(lambda: not any(pid_alive(p) for p in old), timeout=5)


def test_nginx_reload_with_stream_in_flight(nginx, tmp_path):
    """nginx -s reload while a long response streams: the new workers
    load the new script, the old worker finishes the response."""
    script = tmp_path / "app.py"
    script.write_text(script_text(1))
    srv = nginx(server=f"location / {{ wsgi_pass {script}; }}",
                prefix=tmp_path / "p")
    go = tmp_path / "go"
    old_pid = int(srv.get("/").text.split()[1])
    s = start_stream(srv, go)

    deploy(script, script_text(2))
    new = srv.reload(wait_old=False)
    assert old_pid not in new
    # an old worker whose event loop is free may take a connection or two
    # before it has handled its SIGQUIT
    assert wait_for(lambda: srv.get("/").text.split()[:2]
                    == ["2", str(new[0])], timeout=3), srv.logs_tail()
    assert pid_alive(old_pid)

    p = finish_stream(s, go)
    assert p.body.startswith(b"start 1\n")
    assert p.body.endswith(b"end 1\n"), p.body[-100:]
    assert wait_for(lambda: not pid_alive(old_pid), timeout=5), \
        "old worker did not exit after its response"


@pytest.mark.parametrize("main", ["", 'wsgi_application_group "%{GLOBAL}";'],
                         ids=["default", "global"])
def test_interpreter_mechanism_needs_a_subinterpreter(nginx_t, main):
    if subinterpreter_mode() and not main:
        pytest.skip("every application has a sub-interpreter")
    rc, out, conf = nginx_t(server="""
        location / {
            wsgi_script_reloading on;
            wsgi_reload_mechanism interpreter;
            %s
            wsgi_pass {apps}/hello.py;
        }""" % main)
    assert rc != 0, out
    line = conf_line(conf, "wsgi_pass")
    assert re.search(r'\[emerg\] \d+#\d+: "wsgi_reload_mechanism '
                     r'interpreter" needs its application in a '
                     r'sub-interpreter, for '
                     rf'"wsgi_pass" in {re.escape(str(conf))}:{line}', out), out


def test_interpreter_mechanism_without_reloading_is_no_error(nginx_t):
    rc, out, _ = nginx_t(
        http="wsgi_reload_mechanism interpreter;",
        server="location / { wsgi_pass {apps}/hello.py; }")
    assert rc == 0, out


def test_invalid_mechanism(nginx_t):
    rc, out, conf = nginx_t(
        http="wsgi_reload_mechanism fresh;",
        server="location / { wsgi_pass {apps}/hello.py; }")
    assert_emerg_at(rc, out, conf, "wsgi_reload_mechanism",
                    r'invalid value "fresh"')


def test_module_mechanism_and_flag_parse(nginx_t):
    rc, out, _ = nginx_t(
        http="wsgi_script_reloading on; wsgi_reload_mechanism module;",
        server="location / { wsgi_script_reloading off; "
               "wsgi_pass {apps}/hello.py; }")
    assert rc == 0, out


def client(srv, results, stop, every=10, pause=0.005, refresh=None):
    """Sequential keep-alive requests, a new connection every `every`, a
    pause between two: appends (sent, received, status, version, pid) to
    results, and the same to refresh for the answers with "Refresh: 0".

    A request on a kept-alive connection that the server closed before
    answering is sent again on a new one, as HTTP clients do with
    idempotent requests (RFC 9110, 9.2.2): a retiring worker closes its
    idle connections."""
    n = 0
    conn = None
    while not stop.is_set() and n < 20000:
        if conn is None or n % every == 0:
            if conn is not None:
                conn.close()
            conn = srv.connection(timeout=10)
            fresh = True
        sent = time.monotonic()
        try:
            conn.request("GET", "/")
            r = conn.getresponse()
            body = r.read().decode()
            status = r.status
            refreshed = r.getheader("Refresh") == "0"
        except (ConnectionResetError, BrokenPipeError,
                http.client.RemoteDisconnected) as e:
            conn.close()
            conn = None
            if not fresh:
                continue
            body, status, refreshed = repr(e), None, False
        except Exception as e:           # noqa: BLE001 a failure to count
            body, status, refreshed = repr(e), None, False
            conn.close()
            conn = None
        fresh = False
        received = time.monotonic()
        parts = body.split()
        ok = status == 200 and len(parts) == 3 and parts[0].isdigit()
        row = (sent, received, status if ok else None,
               int(parts[0]) if ok else None, int(parts[1]) if ok else None)
        results.append(row)
        if refreshed and refresh is not None:
            refresh.append(row)
        n += 1
        time.sleep(pause)
    if conn is not None:
        conn.close()


@pytest.mark.serial
@pytest.mark.parametrize("mechanism", ["module", "interpreter", "process"])
def test_rewrites_under_load(nginx, tmp_path, mechanism):
    """Two workers, two clients on loopback, 20 versions 1.1 s apart:
    no failed request, every answer from a version already written, and
    every request sent more than CHECK + MARGIN after a change answered
    by that version or a later one.  Under "process", the answers with
    "Refresh: 0" are old code, each its worker's last."""
    srv, script = server(nginx, tmp_path, workers=2, extra=(
        INTERPRETER if mechanism == "interpreter"
        else f"wsgi_reload_mechanism {mechanism};"))
    assert version_of(srv) == 1
    versions = 20
    changes = {1: time.monotonic()}
    results = [[], []]
    refresh = []
    stop = threading.Event()
    clients = [threading.Thread(target=client, args=(srv, r, stop),
                                kwargs={"refresh": refresh})
               for r in results]
    for c in clients:
        c.start()
    try:
        for v in range(2, versions + 2):
            time.sleep(1.1)
            deploy(script, script_text(v))
            changes[v] = time.monotonic()
        time.sleep(CHECK + MARGIN + 0.5)
    finally:
        stop.set()
        for c in clients:
            c.join(30)
    last = versions + 1

    rows = results[0] + results[1]
    failed = [r for r in rows if r[2] != 200]
    assert not failed, (len(failed), failed[:5], srv.logs_tail())

    def current(t):
        """The last version written at t."""
        return max((v for v, at in changes.items() if at <= t), default=1)

    wrong = []
    lag = {v: [] for v in changes}       # old code served after a change
    first = {}                           # the first answer of each version
    for sent, received, _, v, _ in rows:
        if v > current(received):
            wrong.append(("from the future", sent, v))
        if v < current(sent - CHECK - MARGIN):
            wrong.append(("stale", sent - changes[v + 1], v))
        for w in range(v + 1, last + 1):
            if changes[w] <= sent:
                lag[w].append(sent - changes[w])
        if v not in first or sent < first[v]:
            first[v] = sent
    assert not wrong, wrong[:10]

    pids = {r[4] for r in rows}
    to_new = [first[v] - changes[v] for v in range(2, last + 1) if v in first]
    old_for = [max(lag[v]) for v in range(2, last + 1) if lag[v]]
    elapsed = rows and max(r[1] for r in rows) - min(r[0] for r in rows)
    print(f"\nreloading under load: {len(rows)} requests in {elapsed:.1f} s, "
          f"{len(failed)} failed, {versions} versions, workers {sorted(pids)}"
          f"\n  first answer of a new version after its change: "
          f"median {statistics.median(to_new):.3f} s, "
          f"max {max(to_new):.3f} s"
          f"\n  old version still answering after a change: "
          f"max {max(old_for, default=0):.3f} s")
    assert last in first, sorted(first)
    assert "failed to reload" not in srv.error_log()
    if mechanism != "process":
        assert len(pids) == 2, "both workers served"
        assert not refresh
    if mechanism == "interpreter":
        # each worker made an interpreter a version it saw, and ended the
        # one before once its requests were done
        made = srv.error_log().count("goes on in a new interpreter")
        ended = srv.error_log().count("interpreter replaced in application")
        assert versions <= made <= versions * 2, made
        assert made - 2 <= ended <= made, (made, ended)
    if mechanism != "process":
        return

    # every retiring worker said so once, on old code, as its last answer
    assert refresh, "no answer had Refresh: 0"
    retired = [int(p) for p in re.findall(
        r"(\d+)#\d+: .*this worker retires", srv.error_log())]
    assert len({r[4] for r in refresh}) == len(refresh) <= len(retired)
    for sent, received, _, v, pid in refresh:
        assert v < current(received), ("Refresh on new code", v)
        later = [r for r in rows if r[4] == pid and r[0] > received]
        assert not later, ("the retired worker answered again", later[:3])


def test_process_mechanism_retires_the_worker(nginx, tmp_path):
    srv, script = server(nginx, tmp_path, workers=2,
                         extra="wsgi_reload_mechanism process;")
    assert version_of(srv) == 1
    workers = srv.worker_pids()
    deploy(script, script_text(2))

    seen = []

    def new_code():
        r = srv.get("/")
        assert r.status == 200, r
        seen.append((int(r.text.split()[0]), int(r.text.split()[1]),
                     r.header("Refresh")))
        return seen[-1][0] == 2

    assert wait_for(new_code, timeout=CHECK + MARGIN + 3, interval=0.05), \
        (seen, srv.logs_tail())
    refreshed = [s for s in seen if s[2] is not None]
    assert refreshed and all(s == (1, s[1], "0") for s in refreshed), seen
    assert all(s[2] is None for s in seen if s[0] == 2), seen

    # the retired workers are gone, and nginx started new ones
    gone = {s[1] for s in refreshed}
    assert gone <= set(workers)
    assert wait_for(lambda: not any(pid_alive(p) for p in gone), timeout=5)
    assert wait_for(lambda: len(srv.worker_pids()) == 2, timeout=5)
    assert re.search(r"wsgi: script \".*app\.py\" changed, this worker "
                     r"retires after its requests in flight, and a new one "
                     r"imports it", srv.error_log())
    assert "exited on signal" not in srv.error_log()


def test_process_mechanism_keeps_a_worker_for_a_broken_script(nginx,
                                                              tmp_path):
    srv, script = server(nginx, tmp_path,
                         extra="wsgi_reload_mechanism process;")
    assert version_of(srv) == 1
    workers = srv.worker_pids()
    deploy(script, "def application(:\n")
    assert wait_log(srv, r"script \".*app\.py\" does not compile, the "
                         r"worker goes on with the application loaded "
                         r"before"), srv.logs_tail()
    for _ in range(5):
        r = srv.get("/")
        assert r.status == 200 and r.header("Refresh") is None
        assert int(r.text.split()[0]) == 1
    assert srv.worker_pids() == workers
    assert "retires" not in srv.error_log()
    assert srv.error_log().count("does not compile") == 1

    # the next good version retires it
    deploy(script, script_text(3))
    assert wait_version(srv, 3), srv.logs_tail()
