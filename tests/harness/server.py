"""Start, drive and check a throw-away nginx that loads ngx_http_wsgi_module.

Everything listens on 127.0.0.1; every nginx is stopped by its own PID.
"""

import glob
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from .raw import exchange

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = REPO_ROOT / "tests"
APPS_DIR = TESTS_DIR / "apps"
NGINX_BIN = "/usr/sbin/nginx"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

# Error-log lines that fail every test unless explicitly allowed.
# The last one is printed by wsgiref.validate when an application iterator
# is garbage collected without close() having been called (SPEC: close() is
# always called).
BAD_LOG_RE = re.compile(
    r"\[alert\]|\[crit\]|\[emerg\]|exited on signal"
    r"|Iterator garbage collected without being closed"
    r"|ERROR: AddressSanitizer|: runtime error: |Sanitizer:DEADLYSIGNAL")

# nginx tries a bind five times: a port another test held for a moment
BIND_RACE_RE = re.compile(
    r"\[emerg\] .*bind\(\) to 127\.0\.0\.1:\d+ failed "
    r"\(98: Address already in use\)")

# NGX_WSGI_PRELOAD: a sanitizer runtime every nginx started here loads with
# LD_PRELOAD, for a module built with -fsanitize (make sanitize).  The
# sanitizers write their reports to logs/asan.PID in the server's prefix;
# any report fails the test.  ASAN_OPTIONS and UBSAN_OPTIONS from the
# environment come after these defaults and win.
SAN_PRELOAD = os.environ.get("NGX_WSGI_PRELOAD", "")
SAN_OPTIONS = {
    # CPython leaves its memory to the process exit by design
    "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:print_stacktrace=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}


def module_path():
    return os.environ.get("NGX_WSGI_MODULE") or str(
        REPO_ROOT / "build" / "ngx_http_wsgi_module.so")


def nginx_env(prefix):
    """The environment of an nginx run in prefix: the test's own, unless
    NGX_WSGI_PRELOAD asks for a sanitizer runtime."""
    if not SAN_PRELOAD:
        return None
    env = dict(os.environ, LD_PRELOAD=SAN_PRELOAD)
    for var, defaults in SAN_OPTIONS.items():
        env[var] = ":".join(o for o in (defaults, os.environ.get(var),
                                        f"log_path={prefix}/logs/asan") if o)
    return env


def sanitizer_reports(prefix):
    """The sanitizer reports nginx processes of prefix have written."""
    text = ""
    for f in sorted(glob.glob(f"{prefix}/logs/asan.*")):
        with open(f, errors="replace") as fp:
            text += f"--- {f}\n" + fp.read()
    return text


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def render(text, prefix):
    """Replace {apps} and {prefix}; str.replace since configs contain braces."""
    return (text.replace("{apps}", str(APPS_DIR))
                .replace("{prefix}", str(prefix)))


def inline_mode():
    """True when the suite runs with the application on the event loop."""
    return "wsgi_thread_pool off" in os.environ.get(
        "TEST_NGINX_GLOBALS_HTTP", "")


def subinterpreter_mode():
    """True when the suite runs every application in a sub-interpreter."""
    return "wsgi_enable_subinterpreters on" in os.environ.get(
        "TEST_NGINX_GLOBALS_HTTP", "")


def build_config(prefix, port, server="", http="", main="", workers=1,
                 error_level="info", server_name="localhost"):
    prefix = Path(prefix)
    # root runs the workers as root, unless the test names a user
    user = ("user root;\n"
            if os.geteuid() == 0 and not re.search(r"^\s*user\s", main, re.M)
            else "")
    globals_http = os.environ.get("TEST_NGINX_GLOBALS_HTTP", "")
    return (
        f"load_module {module_path()};\n"
        f"worker_processes {workers};\n"
        f"error_log logs/error.log {error_level};\n"
        f"pid logs/nginx.pid;\n"
        f"{user}"
        f"{render(main, prefix)}\n"
        "events {\n"
        "    worker_connections 1024;\n"
        "}\n"
        "http {\n"
        "    access_log off;\n"
        f"    client_body_temp_path {prefix}/temp/client_body;\n"
        f"    proxy_temp_path {prefix}/temp/proxy;\n"
        f"    fastcgi_temp_path {prefix}/temp/fastcgi;\n"
        f"    uwsgi_temp_path {prefix}/temp/uwsgi;\n"
        f"    scgi_temp_path {prefix}/temp/scgi;\n"
        f"{render(http, prefix)}\n"
        f"{globals_http}\n"
        "    server {\n"
        f"        listen 127.0.0.1:{port};\n"
        f"        server_name {server_name};\n"
        f"{render(server, prefix)}\n"
        "    }\n"
        "}\n")


def write_config(prefix, port, **kw):
    prefix = Path(prefix)
    for d in ("conf", "logs", "temp"):
        (prefix / d).mkdir(parents=True, exist_ok=True)
    conf = prefix / "conf" / "nginx.conf"
    conf.write_text(build_config(prefix, port, **kw))
    return conf


def conf_line(conf_path, needle):
    """1-based number of the first line of conf_path that starts (after
    indentation) with needle: the line of a directive."""
    for n, line in enumerate(Path(conf_path).read_text().splitlines(), 1):
        if line.lstrip().startswith(needle):
            return n
    raise AssertionError(f"{needle!r} not in {conf_path}")


def assert_emerg_at(rc, out, conf, needle, msg_re=None):
    """nginx -t failed with [emerg] MSG in CONF:LINE, LINE that of the
    directive needle (see conf_line()), and MSG matches msg_re if given.
    Returns MSG."""
    assert rc != 0, out
    line = conf_line(conf, needle)
    m = re.search(r"\[emerg\] (.*) in %s:(\d+)" % re.escape(str(conf)), out)
    assert m, f"no '[emerg] ... in {conf}:N' in output:\n{out}"
    assert int(m.group(2)) == line, \
        f"error reported at line {m.group(2)}, directive is at {line}:\n{out}"
    if msg_re:
        assert re.search(msg_re, m.group(1)), out
    return m.group(1)


def module_has_directive(nginx_t, directive):
    """Whether nginx -t (the nginx_t fixture) accepts directive in a wsgi
    location."""
    rc, out, _ = nginx_t(server="location / { wsgi_pass {apps}/hello.py; "
                                f"{directive} }}")
    assert rc == 0 or "unknown directive" in out, out
    return rc == 0


def install_app(name, dest_dir, dest_name=None, **subs):
    """Copy tests/apps/NAME into dest_dir, replacing @KEY@ by subs[KEY]."""
    text = (APPS_DIR / name).read_text()
    for k, v in subs.items():
        text = text.replace(f"@{k}@", str(v))
    dest = Path(dest_dir) / (dest_name or name)
    dest.write_text(text)
    return dest


def proc_children(ppid):
    """PIDs of the live (non-zombie) children of ppid, from /proc/*/stat."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == ppid and fields[0] not in ("Z", "X"):
            pids.append(int(d))
    return sorted(pids)


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def fd_count(pid):
    """Number of open file descriptors of pid, None when it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def worker_temp_files(srv, temp):
    """Files under temp that a worker of srv has open (/proc/PID/fd)."""
    out = []
    for pid in srv.worker_pids():
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith(str(temp) + "/"):
                out.append(target)
    return out


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] not in ("Z", "X")


class Response:
    def __init__(self, status, reason, headers, body, version=11):
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value)
        self.body = body                # bytes
        self.version = version

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return (f"<Response {self.status} {self.reason!r} "
                f"headers={self.headers!r} body={self.body[:300]!r}>")


class Server:
    def __init__(self, prefix, port, conf, workers, start_timeout=START_TIMEOUT):
        self.prefix = Path(prefix)
        self.port = port
        self.conf = Path(conf)
        self.workers = workers
        self.allow_log = []             # regexes of tolerated bad log lines
        self.proc = None
        self.stopped = False
        self._known_workers = set()
        self.start_timeout = start_timeout
        self.allow_fds = 0              # tolerated growth of a worker's fds
        self._fds = {}                  # worker pid -> fds after start

    # -- process -------------------------------------------------------
    def _start(self):
        self._stderr = open(self.prefix / "logs" / "stderr.log", "ab")
        self.proc = subprocess.Popen(
            [NGINX_BIN, "-p", str(self.prefix) + "/", "-c", str(self.conf),
             "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=self._stderr,
            stderr=self._stderr, cwd="/", env=nginx_env(self.prefix))

    def _wait_ready(self):
        """Returns None when ready, else a string describing the failure."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                return f"nginx exited with status {self.proc.returncode}"
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=0.2).close()
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                return "port did not accept within %ss" % self.start_timeout
            time.sleep(0.02)
        while len(self.worker_pids()) < self.workers:
            if self.proc.poll() is not None:
                return f"nginx exited with status {self.proc.returncode}"
            if time.monotonic() > deadline:
                return "workers did not start within %ss" % self.start_timeout
            time.sleep(0.02)
        self._record_fds(self._wait_idle(self.worker_pids(), deadline))
        return None

    def _wait_idle(self, pids, deadline):
        """Wait until the workers have initialised (the application
        imported) and wait in their event loop: then their open files are
        those of an idle worker.  Returns pids."""
        for pid in pids:
            while time.monotonic() < deadline:
                try:
                    with open(f"/proc/{pid}/wchan") as f:
                        if f.read() == "do_epoll_wait":
                            break
                except OSError:
                    break
                time.sleep(0.01)
        return pids

    def _record_fds(self, pids):
        for pid in pids:
            n = fd_count(pid)
            if n is not None:
                self._fds[pid] = n

    def check_fds(self, timeout=2):
        """Workers alive since they were recorded whose open file descriptors
        grew by more than allow_fds.  A client's closed connection may still
        be open on the worker's side for a moment: wait for it."""
        deadline = time.monotonic() + timeout
        while True:
            grown = []
            for pid, before in sorted(self._fds.items()):
                now = fd_count(pid)
                if now is not None and pid_alive(pid) \
                        and now > before + self.allow_fds:
                    grown.append((pid, before, now))
            if not grown or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        problems = []
        for pid, before, now in grown:
            fds = []
            fd_dir = f"/proc/{pid}/fd"
            try:
                names = os.listdir(fd_dir)
            except OSError:
                names = []
            for fd in sorted(names, key=int):
                try:
                    fds.append(f"{fd} -> {os.readlink(f'{fd_dir}/{fd}')}")
                except OSError:
                    pass
            problems.append(
                f"worker {pid}: {before} open fds after start, {now} at the "
                f"end of the test (allowed growth {self.allow_fds}):\n    "
                + "\n    ".join(fds))
        return problems

    @property
    def pid(self):
        return self.proc.pid

    def worker_pids(self):
        pids = proc_children(self.proc.pid)
        self._known_workers.update(pids)
        return pids

    def reload(self, timeout=10, wait_old=True):
        """SIGHUP; wait until `workers` new worker pids exist. Returns them.

        With wait_old, also wait (up to 3s, not an error) until the old
        workers have exited or stopped accepting ("is shutting down" title),
        so that a new connection is not accepted by an old worker.  A worker
        busy in a slow request only does that when the request is done:
        pass wait_old=False then."""
        old = set(self.worker_pids())
        os.kill(self.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = set(self.worker_pids()) - old
            if len(new) >= self.workers:
                self._record_fds(self._wait_idle(
                    sorted(new), time.monotonic() + 5))
                if wait_old:
                    self._wait_old_workers(old, 3)
                return sorted(new)
            time.sleep(0.02)
        raise AssertionError(
            f"reload: no new workers within {timeout}s (old {sorted(old)}, "
            f"now {self.worker_pids()})\n" + self.logs_tail())

    def _wait_old_workers(self, old, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = [p for p in old if pid_alive(p)
                    and b"shutting down" not in proc_cmdline(p)]
            if not busy:
                return True
            time.sleep(0.02)
        return False

    def quit(self):
        """Send SIGQUIT (graceful shutdown) without waiting."""
        self.worker_pids()
        os.kill(self.proc.pid, signal.SIGQUIT)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=STOP_TIMEOUT):
        """Graceful stop (SIGQUIT); SIGKILL and AssertionError on timeout."""
        problems = self._shutdown(timeout)
        if problems:
            raise AssertionError("\n".join(problems))

    def _shutdown(self, timeout=STOP_TIMEOUT):
        problems = []
        if self.proc is None or self.stopped:
            return problems
        self.stopped = True
        if self.proc.poll() is None:
            self.worker_pids()
            problems += self.check_fds()
            try:
                os.kill(self.proc.pid, signal.SIGQUIT)
            except ProcessLookupError:
                pass
            if self.wait_exit(timeout) is None:
                problems.append(
                    f"nginx master {self.proc.pid} did not exit within "
                    f"{timeout}s of SIGQUIT (killed)")
                self.proc.kill()
                self.proc.wait()
        # workers must be gone with their master
        deadline = time.monotonic() + 2
        for w in sorted(self._known_workers):
            while pid_alive(w) and time.monotonic() < deadline:
                time.sleep(0.02)
            if pid_alive(w):
                problems.append(f"worker {w} still alive after master exit "
                                f"(killed)")
                try:
                    os.kill(w, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._stderr.close()
        return problems

    def check_logs(self):
        bad = []
        for line in (self.error_log() + self.stderr_log()).splitlines():
            if BIND_RACE_RE.search(line):
                continue
            if BAD_LOG_RE.search(line) and not any(
                    re.search(a, line) for a in self.allow_log):
                bad.append(line)
        san = sanitizer_reports(self.prefix)
        if san:
            bad.append("sanitizer report:\n" + san)
        return bad

    # -- logs ----------------------------------------------------------
    def error_log(self):
        try:
            return (self.prefix / "logs" / "error.log").read_text(
                errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_log(self):
        try:
            return (self.prefix / "logs" / "stderr.log").read_text(
                errors="replace")
        except FileNotFoundError:
            return ""

    def logs_tail(self, n=60):
        lines = (self.stderr_log() + self.error_log()).splitlines()
        return ("--- nginx logs (tail) ---\n" + "\n".join(lines[-n:])
                + sanitizer_reports(self.prefix))

    def wait_log(self, regex, timeout=5):
        deadline = time.monotonic() + timeout
        rx = re.compile(regex, re.M)
        while True:
            m = rx.search(self.error_log())
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.02)

    # -- clients -------------------------------------------------------
    def connection(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10):
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, r.reason, r.getheaders(), data,
                            r.version)
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body=body, **kw)

    def get_json(self, path, **kw):
        r = self.get(path, **kw)
        assert r.status == 200, f"{r!r}\n{self.logs_tail()}"
        return r.json()

    def raw_socket(self, timeout=5):
        return socket.create_connection(("127.0.0.1", self.port),
                                        timeout=timeout)

    def raw(self, data, timeout=5):
        """Send bytes on a fresh socket, read until EOF or timeout: the
        bytes (exchange() also says whether EOF came)."""
        return exchange(self, data, timeout)[0]


class NginxFactory:
    """The `nginx` fixture: nginx(server=..., http=..., main=..., workers=1)."""

    def __init__(self, tmp_path, allow_log=(), allow_fds=0):
        self.tmp_path = Path(tmp_path)
        self.servers = []
        self.allow_log = list(allow_log)
        self.allow_fds = allow_fds
        self._n = 0

    def next_prefix(self):
        """The prefix the next nginx(...) call will use (tmp_path first)."""
        return self.tmp_path if self._n == 0 else \
            self.tmp_path / f"nginx{self._n}"

    def __call__(self, server="", http="", main="", workers=1,
                 error_level="info", server_name="localhost", prefix=None):
        prefix = Path(prefix) if prefix else self.next_prefix()
        self._n += 1
        last = None
        for _attempt in range(3):
            port = free_port()
            conf = write_config(prefix, port, server=server, http=http,
                                main=main, workers=workers,
                                error_level=error_level,
                                server_name=server_name)
            srv = Server(prefix, port, conf, workers)
            srv.allow_log = list(self.allow_log)
            srv.allow_fds = self.allow_fds
            self.servers.append(srv)
            srv._start()
            err = srv._wait_ready()
            if err is None:
                return srv
            last = err
            logs = srv.stderr_log() + srv.error_log()
            srv._shutdown(2)
            if "Address already in use" in logs \
                    and not sanitizer_reports(prefix):
                # lost the free-port race: retry with a fresh log
                self.servers.remove(srv)
                for f in ("error.log", "stderr.log"):
                    try:
                        (prefix / "logs" / f).unlink()
                    except FileNotFoundError:
                        pass
                continue
            break
        raise AssertionError(
            f"nginx did not start: {last}\nconfig {conf}:\n"
            f"{conf.read_text()}\n{srv.logs_tail()}")

    def finish(self):
        problems = []
        for srv in self.servers:
            problems += srv._shutdown()
            bad = srv.check_logs()
            if bad:
                problems.append(
                    f"forbidden lines in error log of {srv.prefix}:\n  "
                    + "\n  ".join(bad[:20]))
        return problems


def nginx_test_config(prefix, server="", http="", main="", workers=1,
                      error_level="info", server_name="localhost"):
    """Write the config and run `nginx -t`: (returncode, output, conf)."""
    conf = write_config(prefix, free_port(), server=server, http=http,
                        main=main, workers=workers, error_level=error_level,
                        server_name=server_name)
    p = subprocess.run(
        [NGINX_BIN, "-t", "-p", str(prefix) + "/", "-c", str(conf)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, cwd="/", timeout=30,
        env=nginx_env(prefix))
    san = sanitizer_reports(prefix)
    assert not san, f"nginx -t: sanitizer report:\n{san}"
    return p.returncode, p.stdout.decode(errors="replace"), conf
