"""CherryPy (Debian's python3-cherrypy3) under wsgi_pass, mounted at /app/:
tests/apps/compat_cherrypy.py, a cherrypy.Application of an object tree."""

import pytest

pytest.importorskip("cherrypy")

from harness import compat  # noqa: E402


@pytest.fixture
def srv(nginx):
    return compat.mount(nginx, "compat_cherrypy.py")


def test_cherrypy_routing(srv):
    compat.check_routing(srv, "cherrypy")


def test_cherrypy_form_json(srv):
    compat.check_form(srv)
    compat.check_json(srv)


def test_cherrypy_redirect_cookies(srv):
    compat.check_redirect(srv)
    compat.check_cookies(srv)


def test_cherrypy_errors(srv):
    compat.check_errors(srv)


def test_cherrypy_big(srv):
    compat.check_big(srv)


def test_cherrypy_upload(srv):
    compat.check_upload(srv)


def test_cherrypy_file(srv):
    compat.check_file(srv)
