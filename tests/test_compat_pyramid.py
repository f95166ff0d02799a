"""Pyramid (Debian's python3-pyramid) under wsgi_pass, mounted at /app/:
tests/apps/compat_pyramid.py, a Configurator.make_wsgi_app() application."""

import pytest

pytest.importorskip("pyramid")

from harness import compat  # noqa: E402


@pytest.fixture
def srv(nginx):
    return compat.mount(nginx, "compat_pyramid.py")


def test_pyramid_routing(srv):
    compat.check_routing(srv, "pyramid")


def test_pyramid_form_json(srv):
    compat.check_form(srv)
    compat.check_json(srv)


def test_pyramid_redirect_cookies(srv):
    compat.check_redirect(srv)
    compat.check_cookies(srv)


def test_pyramid_errors(srv):
    compat.check_errors(srv)


def test_pyramid_big(srv):
    compat.check_big(srv)


def test_pyramid_upload(srv):
    compat.check_upload(srv)


def test_pyramid_file(srv):
    compat.check_file(srv)
