"""Bottle (Debian's python3-bottle) under wsgi_pass, mounted at /app/:
tests/apps/compat_bottle.py, a bottle.Bottle() application."""

import pytest

pytest.importorskip("bottle")

from harness import compat  # noqa: E402


@pytest.fixture
def srv(nginx):
    return compat.mount(nginx, "compat_bottle.py")


def test_bottle_routing(srv):
    compat.check_routing(srv, "bottle")


def test_bottle_form_json(srv):
    compat.check_form(srv)
    compat.check_json(srv)


def test_bottle_redirect_cookies(srv):
    compat.check_redirect(srv)
    compat.check_cookies(srv)


def test_bottle_errors(srv):
    compat.check_errors(srv)


def test_bottle_big(srv):
    compat.check_big(srv)


@pytest.mark.allow_fds(2, "bottle spools the uploads in its own temp files, "
                          "the application's, still referenced after the "
                          "response")
def test_bottle_upload(srv):
    compat.check_upload(srv)


def test_bottle_file(srv):
    compat.check_file(srv)
