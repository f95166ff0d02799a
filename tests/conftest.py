"""Fixtures for the ngx_http_wsgi_module tests.

nginx(server="...", http="", main="", workers=1, error_level="info",
      server_name="localhost", prefix=None) -> harness.Server
    Starts /usr/sbin/nginx on a free 127.0.0.1 port in a fresh prefix
    (tmp_path for the first server of a test).  "{apps}" and "{prefix}" in
    the config texts are replaced by tests/apps and the prefix.  At teardown
    every server gets SIGQUIT (SIGKILL + failure after 10s) and its error log
    must not contain [alert], [crit], [emerg] or "exited on signal"; a test
    that provokes one on purpose sets srv.allow_log = [regex, ...] or uses
    @pytest.mark.allow_log(regex, ...).  A worker alive at teardown with
    the pid it had at start (or after srv.reload()) must not have more open
    file descriptors than it had then, idle in its event loop with the
    application imported (as nginx Unit's harness checks); a test where
    that growth is legitimate says so with @pytest.mark.allow_fds(n,
    reason) or srv.allow_fds = n.  With NGX_WSGI_PRELOAD (make
    sanitize), any sanitizer report fails the test too.

nginx_t(server=..., http=..., main=...) -> (returncode, output, conf_path)
    Runs `nginx -t` on the generated config.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import NginxFactory, nginx_test_config  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "allow_log(*regex): tolerate error-log lines matching regex that "
        "would otherwise fail teardown ([alert], [crit], [emerg], "
        "exited on signal)")
    config.addinivalue_line(
        "markers",
        "allow_fds(n, reason): a worker may end the test with up to n more "
        "open file descriptors than it had when it started")
    config.addinivalue_line(
        "markers",
        "serial: measures how the kernel schedules the pool's threads, or "
        "loads every CPU: make test runs these alone, after the others")


@pytest.fixture
def nginx(request, tmp_path):
    allow = []
    for m in request.node.iter_markers("allow_log"):
        allow.extend(m.args)
    fds = request.node.get_closest_marker("allow_fds")
    factory = NginxFactory(tmp_path, allow, fds.args[0] if fds else 0)
    yield factory
    problems = factory.finish()
    if problems:
        pytest.fail("nginx teardown:\n" + "\n".join(problems),
                    pytrace=False)


@pytest.fixture
def nginx_t(tmp_path):
    n = [0]

    def run(server="", http="", main="", **kw):
        prefix = tmp_path / f"t{n[0]}"
        n[0] += 1
        return nginx_test_config(prefix, server=server, http=http,
                                 main=main, **kw)

    return run
