"""Mercurial's hgweb (Debian's mercurial) under wsgi_pass, mounted at /app/.

tests/apps/compat_hgweb.wsgi is Mercurial's example hgweb.wsgi serving one
repository made in the test's directory, whose hgrc allows pushing over
plain HTTP.  The hg command line clones it over HTTP, commits and pushes
(a ~1 MiB file among the changes, so the bundle is a real request body),
and a second clone pulls the pushed changeset; the web UI shows the
changesets, with links under /app.  The same script given an hgweb
config of two repositories serves their index and each of them.

mercurial.utils.procutil takes sys.stdout.buffer at import, so hgweb
needs sys.stdout to be a text stream over a binary buffer.
"""

import os
import re
import subprocess

import pytest

pytest.importorskip("mercurial")

from harness import compat, install_app  # noqa: E402

HG = "/usr/bin/hg"


def hg(*args, cwd=None):
    env = dict(os.environ, HGRCPATH="", HGPLAIN="1", HGENCODING="utf-8",
               LC_ALL="C.UTF-8")
    p = subprocess.run(
        [HG, "--config", "ui.username=Tester <tester@example.org>",
         *args],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, f"hg {' '.join(args)}: {p.returncode}\n{out}"
    return out


def node(repo, rev="tip"):
    return hg("log", "-R", str(repo), "-r", rev, "-T", "{node}")


@pytest.fixture
def srv(nginx, tmp_path):
    repo = tmp_path / "repo"
    hg("init", str(repo))
    (repo / "hello.txt").write_text("hello from nginx\n")
    hg("commit", "-A", "-m", "first: caf\u00e9", cwd=repo)
    (repo / ".hg" / "hgrc").write_text(
        "[web]\n"
        "allow_push = *\n"
        "push_ssl = false\n"
        "name = compat\n")

    install_app("compat_hgweb.wsgi", tmp_path, CONFIG=repo)
    s = nginx(http="client_max_body_size 16m;", server=f"""
        location /app/ {{
            wsgi_pass {tmp_path}/compat_hgweb.wsgi;
        }}
    """)
    s.repo = repo
    s.url = f"http://127.0.0.1:{s.port}/app/"
    return s


def test_hgweb_browse(srv):
    first = node(srv.repo)

    r = srv.get("/app/")
    compat.ok(srv, r)
    assert r.header("Content-Type").startswith("text/html"), r
    assert "first: caf\u00e9" in r.text
    # links built from SCRIPT_NAME
    assert f'href="/app/rev/{first[:12]}' in r.text, r.text

    r = srv.get(f"/app/rev/{first}")
    compat.ok(srv, r)
    assert first in r.text

    r = srv.get("/app/raw-file/tip/hello.txt")
    compat.ok(srv, r)
    assert r.body == b"hello from nginx\n"

    r = srv.get("/app/file/tip/no-such-file")
    assert r.status == 404, r


def test_hgweb_clone_push_pull(srv, tmp_path):
    first = node(srv.repo)
    one = tmp_path / "one"
    two = tmp_path / "two"

    out = hg("clone", srv.url, str(one))
    assert "updating to branch default" in out, out
    assert (one / "hello.txt").read_text() == "hello from nginx\n"
    assert node(one) == first

    hg("clone", srv.url, str(two))

    big = os.urandom(1024 * 1024 + 3)
    (one / "hello.txt").write_text("hello again\n")
    (one / "big.bin").write_bytes(big)
    hg("commit", "-A", "-m", "second", cwd=one)
    second = node(one)

    out = hg("push", srv.url, cwd=one)
    assert re.search(r"added 1 changesets? with 2 changes to 2 files",
                     out), out

    # the server's repository has it
    assert node(srv.repo) == second

    out = hg("pull", "-u", srv.url, cwd=two)
    assert re.search(r"added 1 changesets? with 2 changes to 2 files",
                     out), out
    assert node(two) == second
    assert (two / "big.bin").read_bytes() == big

    r = srv.get("/app/")
    compat.ok(srv, r)
    assert "second" in r.text


def test_hgwebdir_config(nginx, tmp_path):
    # an hgweb config naming several repositories: hgweb() serves an
    # index of them (hgwebdir), each under its own path below /app
    for name in ("one", "two"):
        repo = tmp_path / name
        hg("init", str(repo))
        (repo / f"{name}.txt").write_text(f"{name}\n")
        hg("commit", "-A", "-m", f"in {name}", cwd=repo)
    config = tmp_path / "hgweb.config"
    config.write_text(f"[paths]\none = {tmp_path}/one\n"
                      f"two = {tmp_path}/two\n")

    install_app("compat_hgweb.wsgi", tmp_path, CONFIG=config)
    srv = nginx(server=f"""
        location /app/ {{
            wsgi_pass {tmp_path}/compat_hgweb.wsgi;
        }}
    """)

    r = srv.get("/app/")
    compat.ok(srv, r)
    assert 'href="/app/one/' in r.text and 'href="/app/two/' in r.text, \
        r.text

    r = srv.get("/app/two/raw-file/tip/two.txt")
    compat.ok(srv, r)
    assert r.body == b"two\n"

    clone = tmp_path / "clone"
    hg("clone", f"http://127.0.0.1:{srv.port}/app/one", str(clone))
    assert (clone / "one.txt").read_text() == "one\n"
