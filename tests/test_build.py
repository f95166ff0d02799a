"""The built module: what it exports, what it links against, the Python
its workers run.

NGX_WSGI_PYTHON_CONFIG names the python3.X-config the module under test
was built with, as for config (make test-py3x sets it); Debian's 3.11 by
default."""

import os
import re
import subprocess

from harness import module_path

PYTHON_CONFIG = os.environ.get("NGX_WSGI_PYTHON_CONFIG",
                               "/usr/bin/python3.11-config")
DEBIAN = PYTHON_CONFIG.startswith("/usr/bin/")

PYINFO_APP = """\
import json
import os
import sys


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"version": "%d.%d" % sys.version_info[:2],
                        "prefix": sys.prefix,
                        "executable": sys.executable,
                        "os": os.__file__}).encode()]
"""


def python_version():
    return re.search(r"python(3\.\d+)-config$", PYTHON_CONFIG).group(1)


def python_prefix():
    return subprocess.run([PYTHON_CONFIG, "--prefix"], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_only_module_symbols_are_exported():
    out = subprocess.run(["nm", "-D", "--defined-only", str(module_path())],
                         capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert {"ngx_modules", "ngx_module_names", "ngx_module_order"} <= names
    stray = sorted(n for n in names - {"ngx_modules", "ngx_module_names",
                                       "ngx_module_order"}
                   if not n.startswith("ngx_http_wsgi_"))
    assert stray == [], stray


def test_linked_against_the_libpython_it_was_built_with():
    out = subprocess.run(["ldd", str(module_path())], capture_output=True,
                         text=True, check=True).stdout
    lines = [l for l in out.splitlines() if "libpython" in l]
    assert len(lines) == 1, out
    assert f"libpython{python_version()}.so" in lines[0], out
    if DEBIAN:
        assert "/usr/lib/" in lines[0] \
            or "/lib/x86_64-linux-gnu/" in lines[0], lines[0]
    else:
        assert f"=> {python_prefix()}/lib/" in lines[0], lines[0]


def test_workers_run_that_python_with_its_standard_library(nginx, tmp_path):
    app = tmp_path / "pyinfo.py"
    app.write_text(PYINFO_APP)
    srv = nginx(server=f"location / {{ wsgi_pass {app}; }}")
    info = srv.get_json("/")
    prefix = python_prefix()
    assert info["version"] == python_version(), info
    assert info["prefix"] == prefix, info
    assert info["executable"].startswith(prefix + "/bin/python3"), info
    assert info["os"].startswith(
        f"{prefix}/lib/python{python_version()}/"), info
