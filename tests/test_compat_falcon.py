"""Falcon (Debian's python3-falcon) under wsgi_pass, mounted at /app/:
tests/apps/compat_falcon.py, a falcon.App() application."""

import pytest

pytest.importorskip("falcon")

from harness import compat  # noqa: E402


@pytest.fixture
def srv(nginx):
    return compat.mount(nginx, "compat_falcon.py")


def test_falcon_routing(srv):
    compat.check_routing(srv, "falcon")


def test_falcon_form_json(srv):
    compat.check_form(srv)
    compat.check_json(srv)


def test_falcon_redirect_cookies(srv):
    compat.check_redirect(srv)
    compat.check_cookies(srv)


def test_falcon_errors(srv):
    compat.check_errors(srv)


def test_falcon_big(srv):
    compat.check_big(srv)


def test_falcon_upload(srv):
    compat.check_upload(srv)


def test_falcon_file(srv):
    compat.check_file(srv, ranges=False, conditional=False)
