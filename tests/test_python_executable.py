"""wsgi_python_executable: the workers' Python starts as that executable,
and finds its prefix and a virtualenv from it as `path -c ...` run from a
shell does; the checks nginx -t makes of the path.

The virtualenv is made by the Python the module is built with: Debian's
/usr/bin/python3, or the one NGX_WSGI_PYTHON_CONFIG names (make
test-py3x)."""

import json
import os
import re
import subprocess

import pytest

from harness import assert_emerg_at

PYTHON_CONFIG = os.environ.get("NGX_WSGI_PYTHON_CONFIG",
                               "/usr/bin/python3.11-config")
# the interpreter of the build: python3.X-config without "-config"
BASE_PYTHON = PYTHON_CONFIG[:-len("-config")]
VERSION = re.search(r"python(3\.\d+)-config$", PYTHON_CONFIG).group(1)

FACTS = ("import json, sys; print(json.dumps({"
         "'executable': sys.executable, 'prefix': sys.prefix, "
         "'exec_prefix': sys.exec_prefix, 'base_prefix': sys.base_prefix, "
         "'path': sys.path}))")

INFO_APP = """\
import json
import sys


def application(environ, start_response):
    out = {"executable": sys.executable, "prefix": sys.prefix,
           "exec_prefix": sys.exec_prefix, "base_prefix": sys.base_prefix,
           "path": sys.path}
    try:
        import venv_only_module
        out["venv_only"] = venv_only_module.VALUE
    except ImportError as e:
        out["venv_only"] = repr(e)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(out).encode()]
"""

LOCATION = "location / { wsgi_pass {apps}/hello.py; }"


def make_venv(where):
    """A virtualenv made by the build's Python, with a module only its
    site-packages has: the path of its bin/python3."""
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", str(where)],
                   check=True, timeout=120)
    site = where / "lib" / f"python{VERSION}" / "site-packages"
    assert site.is_dir(), site
    (site / "venv_only_module.py").write_text('VALUE = "from the venv"\n')
    return where / "bin" / "python3"


def from_shell(exe):
    """What `exe -c ...` started from a shell reports, sys.path without the
    "" that -c puts first (the directory of a script: there is none)."""
    out = subprocess.run([str(exe), "-c", FACTS], capture_output=True,
                         text=True, check=True, cwd="/", timeout=30).stdout
    facts = json.loads(out)
    assert facts["path"][0] == "", facts
    facts["path"] = facts["path"][1:]
    return facts


def serve_info(nginx, tmp_path, exe):
    app = tmp_path / "info_app.py"
    app.write_text(INFO_APP)
    srv = nginx(http=f"wsgi_python_executable {exe};",
                server=f"location / {{ wsgi_pass {app}; }}")
    return srv.get_json("/")


def test_virtualenv_executable(nginx, tmp_path):
    exe = make_venv(tmp_path / "venv")
    info = serve_info(nginx, tmp_path, exe)
    venv_only = info.pop("venv_only")
    assert info == from_shell(exe)
    assert info["executable"] == str(exe)
    assert info["prefix"] == info["exec_prefix"] == str(tmp_path / "venv")
    assert info["base_prefix"] == from_shell(BASE_PYTHON)["prefix"]
    assert str(tmp_path / "venv" / "lib") in " ".join(info["path"])
    assert venv_only == "from the venv"


def test_start_line_names_executable_and_prefix(nginx, tmp_path):
    # an executable of another Python version goes unnoticed by Python:
    # the worker's start line says what it found
    exe = make_venv(tmp_path / "venv")
    app = tmp_path / "info_app.py"
    app.write_text(INFO_APP)
    srv = nginx(http=f"wsgi_python_executable {exe};",
                server=f"location / {{ wsgi_pass {app}; }}")
    assert re.search(rf'\[info\] .*wsgi: Python \S+ .*started, executable '
                     rf'"{re.escape(str(exe))}", prefix '
                     rf'"{re.escape(str(tmp_path / "venv"))}", '
                     rf'interpreters: \d+', srv.error_log()), srv.logs_tail()


def test_virtualenv_executable_relative_to_prefix(nginx, tmp_path):
    # the nginx fixture's first server has tmp_path as its prefix
    exe = make_venv(tmp_path / "venv")
    info = serve_info(nginx, tmp_path, "venv/bin/python3")
    assert info["executable"] == str(exe)
    assert info["prefix"] == str(tmp_path / "venv")
    assert info["venv_only"] == "from the venv"


@pytest.mark.parametrize("how", ["base", "symlink"])
def test_executable_outside_a_virtualenv(nginx, tmp_path, how):
    # the base interpreter itself, and a symlink to it elsewhere: the prefix
    # is found through the symlink, sys.executable stays as given
    if how == "base":
        exe = BASE_PYTHON
    else:
        (tmp_path / "bin").mkdir()
        exe = tmp_path / "bin" / "mypython"
        exe.symlink_to(BASE_PYTHON)
    info = serve_info(nginx, tmp_path, exe)
    assert info.pop("venv_only").startswith("ModuleNotFoundError")
    assert info == from_shell(exe)
    assert info["executable"] == str(exe)
    assert info["prefix"] == info["base_prefix"] \
        == from_shell(BASE_PYTHON)["prefix"]


def test_reload_switches_to_the_virtualenv(nginx, tmp_path):
    # the workers' Python starts in each new worker: a reload with the
    # directive added is enough, no restart
    exe = make_venv(tmp_path / "venv")
    app = tmp_path / "info_app.py"
    app.write_text(INFO_APP)
    srv = nginx(server=f"location / {{ wsgi_pass {app}; }}")
    assert srv.get_json("/")["venv_only"].startswith("ModuleNotFoundError")
    conf = srv.conf.read_text()
    srv.conf.write_text(conf.replace(
        "http {\n", f"http {{\n    wsgi_python_executable {exe};\n", 1))
    srv.reload()
    info = srv.get_json("/")
    assert info["executable"] == str(exe)
    assert info["venv_only"] == "from the venv"


# -- nginx -t ----------------------------------------------------------------

def test_executable_missing(nginx_t, tmp_path):
    rc, out, conf = nginx_t(http=f"wsgi_python_executable {tmp_path}/none;",
                            server=LOCATION)
    assert_emerg_at(rc, out, conf, "wsgi_python_executable",
                    r'/none" failed \(2: No such file')


def test_executable_is_a_directory(nginx_t, tmp_path):
    rc, out, conf = nginx_t(http=f"wsgi_python_executable {tmp_path};",
                            server=LOCATION)
    assert_emerg_at(rc, out, conf, "wsgi_python_executable",
                    r'" is not a regular file')


def test_executable_dangling_symlink(nginx_t, tmp_path):
    link = tmp_path / "python3"
    link.symlink_to(tmp_path / "gone")
    rc, out, conf = nginx_t(http=f"wsgi_python_executable {link};",
                            server=LOCATION)
    assert_emerg_at(rc, out, conf, "wsgi_python_executable",
                    r'/python3" failed \(2: No such file')


def test_executable_not_executable(nginx_t, tmp_path):
    f = tmp_path / "python3"
    f.write_text("")
    f.chmod(0o644)
    rc, out, conf = nginx_t(http=f"wsgi_python_executable {f};",
                            server=LOCATION)
    assert_emerg_at(rc, out, conf, "wsgi_python_executable",
                    r'/python3" is not executable')


def test_executable_empty(nginx_t):
    rc, out, conf = nginx_t(http='wsgi_python_executable "";',
                            server=LOCATION)
    assert_emerg_at(rc, out, conf, "wsgi_python_executable", r"empty path")


def test_executable_duplicate(nginx_t):
    # two spaces in the second, for assert_emerg_at to find its line
    rc, out, conf = nginx_t(http=f"wsgi_python_executable {BASE_PYTHON};\n"
                                 f"wsgi_python_executable  {BASE_PYTHON};",
                            server=LOCATION)
    assert_emerg_at(rc, out, conf, "wsgi_python_executable  ",
                    r"is duplicate")


def test_executable_not_allowed_in_server(nginx_t):
    rc, out, conf = nginx_t(server=f"wsgi_python_executable {BASE_PYTHON};\n"
                                   + LOCATION)
    assert_emerg_at(rc, out, conf, "wsgi_python_executable",
                    r"not allowed here")


@pytest.mark.parametrize("first", ["home", "executable"])
def test_executable_and_home_conflict(nginx_t, first):
    # whichever comes second is the error, at its line
    home = "wsgi_python_home /usr;"
    exe = f"wsgi_python_executable {BASE_PYTHON};"
    lines = [home, exe] if first == "home" else [exe, home]
    rc, out, conf = nginx_t(http="\n".join(lines), server=LOCATION)
    second = lines[1].split()[0]
    other = lines[0].split()[0]
    assert_emerg_at(rc, out, conf, second,
                    rf'"{second}" directive conflicts with "{other}"')
