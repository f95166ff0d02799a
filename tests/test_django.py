"""A real Django site (Debian's python3-django) under wsgi_pass.

tests/apps/django_site is a minimal project with the admin enabled.  The
module fixture copies it into a temporary directory, migrates its SQLite
database and creates a superuser with manage.py, in subprocesses, before
any nginx starts; each test then serves the copy with
`wsgi_python_path SITE; wsgi_pass SITE/wsgi.py;` and walks through the
admin login: CSRF cookie and form token, POST, redirect, session cookie.
"""

import os
import re
import shutil
import subprocess
import urllib.parse

import pytest

from harness import APPS_DIR, compat, wait_for

PYTHON = "/usr/bin/python3"
SITE = APPS_DIR / "django_site"

USER = "admin"
PASSWORD = "nginx-wsgi-test-password"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("django") / "django_site"
    shutil.copytree(SITE, d, ignore=shutil.ignore_patterns(
        "__pycache__", "*.sqlite3"))

    env = dict(os.environ,
               DJANGO_SUPERUSER_USERNAME=USER,
               DJANGO_SUPERUSER_EMAIL="admin@example.com",
               DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("DJANGO_SITE_DB", None)

    for args in (["migrate", "--noinput"], ["createsuperuser", "--noinput"]):
        p = subprocess.run([PYTHON, "manage.py"] + args, cwd=d, env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        assert p.returncode == 0, \
            "manage.py %s:\n%s" % (" ".join(args), p.stdout.decode())

    assert (d / "db.sqlite3").exists()
    return d


@pytest.fixture
def srv(nginx, site):
    return nginx(http=f"wsgi_python_path {site};",
                 server=f"location / {{ wsgi_pass {site}/wsgi.py; }}")


class Browser(compat.Browser):
    """The harness's cookie jar, and Django's login form."""

    def post_form(self, path, fields):
        body = urllib.parse.urlencode(fields).encode()
        return self.request("POST", path, body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"})


def login_form(b):
    r = b.get("/admin/login/?next=/admin/")
    assert r.status == 200, f"{r!r}\n{b.srv.logs_tail()}"
    assert "csrftoken" in b.cookies, r.headers

    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', r.text)
    assert m, r.text
    return m.group(1)


def no_errors(srv):
    errors = [line for line in srv.error_log().splitlines()
              if "[error]" in line]
    assert not errors, "\n".join(errors)


def test_django_plain_view(srv):
    r = srv.get("/some/path?x=1&y=%C3%A9")
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    assert r.text == "django_site: GET /some/path?x=1&y=%C3%A9\n"

    # UTF-8 in the path survives PATH_INFO's latin-1 round trip
    r = srv.get("/caf%C3%A9/")
    assert r.status == 200, r
    assert r.text == "django_site: GET /caf%C3%A9/\n"

    no_errors(srv)


def test_django_admin_login(srv):
    b = Browser(srv)

    # not logged in: the admin redirects to its login page
    r = b.get("/admin/")
    assert r.status == 302, r
    assert r.header("Location") == "/admin/login/?next=/admin/"

    token = login_form(b)

    r = b.post_form("/admin/login/?next=/admin/", {
        "csrfmiddlewaretoken": token,
        "username": USER,
        "password": PASSWORD,
        "next": "/admin/",
    })
    assert r.status == 302, f"{r!r}\n{srv.logs_tail()}"
    assert r.header("Location") == "/admin/"
    assert "sessionid" in b.cookies, r.headers

    r = b.get("/admin/")
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    assert "Site administration" in r.text
    assert re.search(r"Welcome,\s*<strong>%s</strong>" % USER, r.text), \
        r.text

    # a page reading the database through the session's user
    r = b.get("/admin/auth/user/")
    assert r.status == 200, r
    assert "admin@example.com" in r.text

    no_errors(srv)


def test_django_admin_login_rejected(srv):
    b = Browser(srv)
    token = login_form(b)

    fields = {
        "username": USER,
        "password": PASSWORD,
        "next": "/admin/",
    }

    # a token of the right shape that does not match the cookie
    bad = token[::-1] if token[::-1] != token else "x" * len(token)
    r = b.post_form("/admin/login/?next=/admin/",
                    dict(fields, csrfmiddlewaretoken=bad))
    assert r.status == 403, r
    assert "CSRF" in r.text
    assert "sessionid" not in b.cookies

    # no token at all
    r = b.post_form("/admin/login/?next=/admin/", fields)
    assert r.status == 403, r
    assert "sessionid" not in b.cookies

    # the right token without the cookie it belongs to
    b.cookies.clear()
    r = b.post_form("/admin/login/?next=/admin/",
                    dict(fields, csrfmiddlewaretoken=token))
    assert r.status == 403, r
    assert "sessionid" not in b.cookies

    # a valid token and a wrong password: the form again, no session
    token = login_form(b)
    r = b.post_form("/admin/login/?next=/admin/",
                    dict(fields, csrfmiddlewaretoken=token,
                         password="wrong"))
    assert r.status == 200, r
    assert "Please enter the correct username and password" in r.text
    assert "sessionid" not in b.cookies

    no_errors(srv)


def test_django_reloaded_in_a_new_interpreter(nginx, site, tmp_path):
    """wsgi_reload_mechanism interpreter on a real project: a view changed
    in an imported module shows once wsgi.py is touched, and a session
    made before the reload still logs in, through the new interpreter."""
    d = tmp_path / "django_site"
    shutil.copytree(site, d, ignore=shutil.ignore_patterns("__pycache__"))
    srv = nginx(http=f"wsgi_python_path {d};", server=f"""
        location / {{
            wsgi_application_group django;
            wsgi_script_reloading on;
            wsgi_reload_mechanism interpreter;
            wsgi_pass {d}/wsgi.py;
        }}""")
    b = Browser(srv)
    token = login_form(b)
    r = b.post_form("/admin/login/?next=/admin/", {
        "csrfmiddlewaretoken": token, "username": USER,
        "password": PASSWORD, "next": "/admin/"})
    assert r.status == 302, f"{r!r}\n{srv.logs_tail()}"
    assert srv.get("/x").text == "django_site: GET /x\n"

    urls = d / "testsite" / "urls.py"
    urls.write_text(urls.read_text().replace('"django_site: ',
                                             '"django_site v2: '))
    os.utime(d / "wsgi.py")
    assert wait_for(lambda: srv.get("/x").text == "django_site v2: GET /x\n",
                    timeout=5), srv.logs_tail()
    assert srv.wait_log(r'wsgi: application group "django" goes on in a '
                        r'new interpreter'), srv.logs_tail()

    r = b.get("/admin/")
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    assert "Site administration" in r.text
    assert srv.wait_log(r'wsgi: the interpreter replaced in application '
                        r'group "django" ended'), srv.logs_tail()
    no_errors(srv)
