"""Processes and threads of applications: child processes, os.fork(),
wsgi.input from other threads, and the httpoxy header.

Each test names its mode per location (inline on the event loop, or the
thread pool "t"), so that both runs of the suite check both modes.
"""

import json
import re
import socket
import time

import pytest

from harness import read_until_eof, split_response, wait_for


POOL_MAIN = "thread_pool t threads=4;"
MODES = {"inline": "wsgi_thread_pool off;", "pool": "wsgi_thread_pool t;"}
BOTH = pytest.mark.parametrize("mode", sorted(MODES))


def loc(path, app, mode, extra=""):
    return (f"location {path} {{ wsgi_pass {{apps}}/{app}; {MODES[mode]} "
            f"{extra} }}\n")


# child processes: the worker reaps only what it started, nothing


def results(srv, path):
    r = srv.get(path, timeout=30)
    assert r.status == 200, f"{r!r}\n{srv.logs_tail()}"
    return r.json()["results"]


@BOTH
def test_child_exit_status(nginx, mode):
    srv = nginx(main=POOL_MAIN, server=loc("/c/", "fault_child.py", mode))
    assert results(srv, "/c/run?n=20") == [3] * 20


@BOTH
def test_child_check_call_raises(nginx, mode):
    srv = nginx(main=POOL_MAIN, server=loc("/c/", "fault_child.py", mode))
    assert results(srv, "/c/check?n=20") == ["raised 1"] * 20


@BOTH
def test_child_popen_wait_after_exit(nginx, mode):
    srv = nginx(main=POOL_MAIN, server=loc("/c/", "fault_child.py", mode))
    assert results(srv, "/c/popen?n=20") == [5] * 20


@BOTH
def test_child_waitpid(nginx, mode):
    srv = nginx(main=POOL_MAIN, server=loc("/c/", "fault_child.py", mode))
    assert results(srv, "/c/waitpid?n=20") == [7] * 20


@BOTH
def test_child_killed_by_signal(nginx, mode):
    """A child that dies on a signal is the application's business: its
    status reaches the application, and nginx logs nothing about it."""
    srv = nginx(main=POOL_MAIN, server=loc("/c/", "fault_child.py", mode))
    assert results(srv, "/c/signal?n=5") == [-9] * 5
    assert "exited on signal" not in srv.error_log()
    assert "unknown process" not in srv.error_log()
