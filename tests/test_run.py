"""tools/run.sh, which `make run` calls: one application served by
Debian's nginx and the module, mounted where MOUNT says, with the
directives LOCATION adds, as docs/compatibility.md shows for Radicale
and hgweb."""

import base64
import http.client
import json
import os
import signal
import subprocess
import time

import pytest

from harness import (APPS_DIR, REPO_ROOT, free_port, module_path,
                     pid_alive)
from harness.compat import radicale_config

RUN = REPO_ROOT / "tools" / "run.sh"


def start(tmp_path, app, **env):
    port = free_port()
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen(
        [str(RUN), module_path(), str(app), str(port)],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "RUN_USER": "root",
             "RUN_PREFIX": str(tmp_path / "run"), **env})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1) \
                .request("HEAD", "/")
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    assert proc.poll() is None, (tmp_path / "run.log").read_text()
    return proc, port


def stop(proc):
    proc.send_signal(signal.SIGQUIT)
    try:
        assert proc.wait(10) == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_run_mounts_the_application_with_more_directives(tmp_path):
    proc, port = start(tmp_path, APPS_DIR / "env_app.py",
                       MOUNT="/app/",
                       LOCATION="wsgi_var RUN_CHECK yes;")
    try:
        status, _, body = request(port, "GET", "/app/x")
        assert status == 200, body
        env = json.loads(body)
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/x")
        assert env["RUN_CHECK"] == "yes"
        assert request(port, "GET", "/x")[0] == 404
    finally:
        stop(proc)
    assert "at http://127.0.0.1:%d/app/" % port \
        in (tmp_path / "run.log").read_text()
    assert not pid_alive(proc.pid)


def test_run_rejects_a_mount_without_a_slash(tmp_path):
    r = subprocess.run([str(RUN), module_path(),
                        str(APPS_DIR / "hello.py"), str(free_port())],
                       env={**os.environ, "MOUNT": "app"},
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "MOUNT must start with /" in r.stderr


def test_run_serves_a_caldav_round_trip_to_radicale(tmp_path):
    pytest.importorskip("radicale")
    config = radicale_config(tmp_path, "alice", "secret")
    proc, port = start(
        tmp_path, APPS_DIR / "compat_radicale.py", MOUNT="/radicale/",
        LOCATION=(f"wsgi_var RADICALE_CONFIG {config}; "
                  "wsgi_pass_authorization on;"))
    auth = {"Authorization": "Basic "
            + base64.b64encode(b"alice:secret").decode()}
    cal = "/radicale/alice/calendar/"
    event = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n"
             "BEGIN:VEVENT\r\nUID:e1@example\r\nDTSTAMP:20261207T080000Z\r\n"
             "DTSTART:20261224T180000Z\r\nSUMMARY:Dinner\r\nEND:VEVENT\r\n"
             "END:VCALENDAR\r\n")
    try:
        assert request(port, "MKCALENDAR", cal, headers=auth)[0] == 201
        status, headers, _ = request(
            port, "PUT", cal + "e1.ics", event.encode(),
            {**auth, "Content-Type": "text/calendar"})
        assert status == 201
        status, _, body = request(port, "GET", cal + "e1.ics", headers=auth)
        assert status == 200 and b"SUMMARY:Dinner" in body
        status, _, body = request(port, "PROPFIND", cal,
                                  headers={**auth, "Depth": "1"})
        assert status == 207 and cal.encode() + b"e1.ics" in body
        status, _, _ = request(port, "DELETE", cal + "e1.ics",
                               headers={**auth, "If-Match": headers["ETag"]})
        assert status == 200
        assert request(port, "GET", cal + "e1.ics", headers=auth)[0] == 404
    finally:
        stop(proc)
