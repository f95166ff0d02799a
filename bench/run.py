#!/usr/bin/python3
"""Benchmarks of nginx mod_wsgi against nginx itself and the usual WSGI
servers.  See bench/README.md for what is measured and how.

    /usr/bin/python3 bench/run.py [--runs N] [--duration S] [--quick]
                                  [--only NAME,...] [--keep]
    /usr/bin/python3 bench/run.py --memory [--memory-requests N]

Every server runs on 127.0.0.1 on a free port, with its files in a private
temporary directory, one worker process, pinned to CPU 0; wrk runs on
CPU 1.  Servers are stopped by PID, and the directory is removed, also
after a failure or Ctrl-C.  The report goes to stdout and to
bench/results/latest.md (bench/results/memory.md for --memory); progress
goes to stderr.
"""

import argparse
import datetime
import grp
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
APPS_SRC = BENCH_DIR / "apps"
RESULTS_DIR = BENCH_DIR / "results"
MODULE_SO = REPO_ROOT / "build" / "ngx_http_wsgi_module.so"

NGINX = "/usr/sbin/nginx"
APACHE = "/usr/sbin/apache2"
APACHE_MODULES = Path("/usr/lib/apache2/modules")
PYTHON = "/usr/bin/python3"
UWSGI = "/usr/bin/uwsgi"
WRK = "/usr/bin/wrk"
TASKSET = "/usr/bin/taskset"

SERVER_CPU = "0"
CLIENT_CPU = "1"

# the servers' unprivileged user (Apache refuses to serve as root)
RUN_USER = "nobody"

CLK_TCK = os.sysconf("SC_CLK_TCK")
# fewer clock ticks than this in a run: its CPU us/req is marked "~"
PRECISE_TICKS = 50
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

THREADS = 64                  # threads of every threaded server
DEFAULT_CONNS = 10
SLEEP_CONNS = 50
CPU_LOAD_CONNS = 8            # connections hammering the CPU-bound app
STATIC_CONNS = 2              # the latency probe on the static file

BODY_64K = bytes(range(256)) * 256          # as bench/apps/body64k.py
FILE_1M = bytes(range(256)) * 4096
ECHO_SIZE = 16384

# the targets of the issue
BJOERN_ECHO_US = 9.1
# ... on the machine where nginx return 200 cost this much (the issue)
ISSUE_RETURN200_US = 4.2


DATE_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


def now():
    return datetime.datetime.now().astimezone()


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class StartError(Exception):
    """A server did not come up; the message says why."""


# --------------------------------------------------------------- processes

def proc_stat(pid):
    """Fields of /proc/PID/stat after the command name, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def pid_alive(pid):
    fields = proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def start_time(pid):
    """When pid started (clock ticks since boot): with the PID, it names
    the process even after the PID is reused."""
    fields = proc_stat(pid)
    return None if fields is None else int(fields[19])


def all_parents():
    """{pid: ppid} of every process."""
    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            fields = proc_stat(d)
            if fields is not None:
                parents[int(d)] = int(fields[1])
    return parents


def process_tree(roots):
    """The live PIDs of roots and all their descendants."""
    parents = all_parents()
    tree = set(p for p in roots if p in parents)
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sorted(p for p in tree if pid_alive(p))


def cpu_ticks(pids):
    """{pid: utime + stime + cutime + cstime} in clock ticks: all threads
    of each process, and its children that exited and were reaped."""
    ticks = {}
    for pid in pids:
        fields = proc_stat(pid)
        if fields is not None:
            ticks[pid] = sum(int(x) for x in fields[11:15])
    return ticks


def status_field(path, name):
    """The number a /proc status file gives for name, or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_kib(pid):
    return status_field(f"/proc/{pid}/status", "VmRSS")


def pinned(cpu, cmd):
    return [TASKSET, "-c", cpu] + list(cmd)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_user():
    pw = pwd.getpwnam(RUN_USER)
    return pw.pw_name, grp.getgrgid(pw.pw_gid).gr_name


def nice_limit_grantable():
    """Whether nginx's master can let unprivileged workers take a thread
    back from SCHED_IDLE (wsgi_thread_priority auto): RLIMIT_NICE allows
    nice 0 already, or root may raise it (CAP_SYS_RESOURCE, which some
    containers withhold)."""
    hard = resource.getrlimit(resource.RLIMIT_NICE)[1]
    if hard == resource.RLIM_INFINITY or hard >= 20:
        return True
    caps = re.search(r"^CapEff:\s*([0-9a-f]+)$",
                     Path("/proc/self/status").read_text(), re.M)
    cap_sys_resource = 1 << 24
    return bool(caps and int(caps.group(1), 16) & cap_sys_resource)


# ----------------------------------------------------------------- servers

@dataclass
class Proc:
    label: str
    popen: subprocess.Popen
    stop_signal: int


@dataclass
class Server:
    """One configuration under test: its processes (a front nginx and an
    application server, or one of them), its port and its logs."""

    name: str
    port: int
    procs: list = field(default_factory=list)
    logs: list = field(default_factory=list)
    seen: dict = field(default_factory=dict)    # pid -> start time
    handoffs: bool = False      # count the thread pool's rounds

    def spawn(self, label, cmd, stop_signal, log_path, env=None, cwd=None):
        out = open(log_path, "ab")
        try:
            popen = subprocess.Popen(pinned(SERVER_CPU, cmd),
                                     stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, env=env,
                                     cwd=cwd, start_new_session=True)
        finally:
            out.close()
        self.procs.append(Proc(label, popen, stop_signal))
        self.logs.append((label, Path(log_path)))
        return popen

    def pids(self):
        pids = process_tree([p.popen.pid for p in self.procs])
        for pid in pids:
            self.seen.setdefault(pid, start_time(pid))
        return pids

    def leftovers(self):
        """Processes of ours still alive: same PID, same start time."""
        return [pid for pid, t in self.seen.items()
                if pid_alive(pid) and start_time(pid) == t]

    def cpu(self):
        return cpu_ticks(self.pids())

    def check_running(self):
        for p in self.procs:
            if p.popen.poll() is not None:
                raise StartError(f"{p.label} exited with status "
                                 f"{p.popen.returncode}: {self.log_tail()}")

    def log_tail(self, lines=3):
        tail = []
        for _, path in self.logs:
            try:
                text = path.read_text(errors="replace").strip().splitlines()
            except OSError:
                continue
            tail.extend(text[-lines:])
        return " / ".join(tail)[-400:] or "no log output"

    def stop(self):
        # not interrupted by a second Ctrl-C: the processes must go
        old = [signal.signal(s, signal.SIG_IGN)
               for s in (signal.SIGINT, signal.SIGTERM)]
        try:
            self._stop()
        finally:
            signal.signal(signal.SIGINT, old[0])
            signal.signal(signal.SIGTERM, old[1])

    def _stop(self):
        self.pids()
        # the front (started last) first, so that it stops sending
        # requests to the application server
        for p in reversed(self.procs):
            if p.popen.poll() is None:
                try:
                    p.popen.send_signal(p.stop_signal)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for p in self.procs:
            try:
                p.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"  {self.name}: {p.label} ignored its stop signal, "
                    "killing it")
        # whatever is left, by PID: stuck workers, daemon processes
        for _ in range(50):
            left = self.leftovers()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for p in self.procs:
                if p.popen.poll() is None:
                    try:
                        p.popen.wait(0.1)
                    except subprocess.TimeoutExpired:
                        pass
            time.sleep(0.1)


def http_get(port, path, method="GET", body=None, timeout=5.0):
    """(status, body) of one request, or raises OSError."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Connection: close\r\n")
        if body is not None:
            head += f"Content-Length: {len(body)}\r\n"
        s.sendall(head.encode() + b"\r\n" + (body or b""))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise OSError(f"no HTTP response ({len(data)} bytes)")
    status = int(status_line[1])
    if any(x.lower() == "transfer-encoding: chunked" for x in lines[1:]):
        rest = dechunk(rest)
    return status, rest


def dechunk(data):
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


def wait_ready(server, path="/hello"):
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        server.check_running()
        try:
            status, _ = http_get(server.port, path, timeout=2.0)
            if status == 200:
                return
            last = f"status {status}"
        except (OSError, ValueError, IndexError) as e:
            last = str(e) or e.__class__.__name__
        time.sleep(0.1)
    raise StartError(f"not ready after {START_TIMEOUT:.0f}s ({last}): "
                     f"{server.log_tail()}")


# ------------------------------------------------------------- environment

class Env:
    """The temporary directory: apps, data, static files, the module and
    one subdirectory per server."""

    def __init__(self, module_so, keep=False):
        self.module_so = module_so
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix="ngx-wsgi-bench-"))
        # the servers' unprivileged user reads apps, data, static files
        self.root.chmod(0o755)
        self.apps = self.root / "apps"
        self.data = self.root / "data"
        self.static = self.root / "static"
        self.module = self.root / "modules" / "ngx_http_wsgi_module.so"
        self.user, self.group = run_user()
        # nginx's workers: unprivileged, unless then "auto" could not work
        self.nginx_root = not nice_limit_grantable()
        self.nginx_user = ("root root" if self.nginx_root
                           else f"{self.user} {self.group}")
        self.uid, self.gid = pwd.getpwnam(self.user)[2:4]
        self.post_lua = self.root / "post16k.lua"

    def setup(self):
        for d in (self.apps, self.data, self.static, self.module.parent):
            d.mkdir(mode=0o755)
        for src in sorted(APPS_SRC.glob("*.py")):
            shutil.copy(src, self.apps / src.name)
        (self.data / "file1m.bin").write_bytes(FILE_1M)
        (self.static / "64k.bin").write_bytes(BODY_64K)
        (self.static / "small.txt").write_bytes(b"s" * 1024)
        # a copy: "make" may replace build/*.so while we run
        self.module_built = module_time(self.module_so)
        self.repository = git_describe()
        shutil.copy(self.module_so, self.module)
        self.post_lua.write_text(
            'wrk.method = "POST"\n'
            f'wrk.body = string.rep("a", {ECHO_SIZE})\n'
            'wrk.headers["Content-Type"] = "application/octet-stream"\n')
        for p in self.root.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)

    def dir(self, name):
        d = self.root / name
        for sub in ("", "conf", "logs", "temp", "run"):
            (d / sub).mkdir(exist_ok=True)
        # sockets: application servers create them after dropping root
        os.chown(d / "run", self.uid, self.gid)
        return d

    def cleanup(self):
        if self.keep:
            log(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------- configurations

def nginx_conf(env, prefix, port, locations, main="", http="",
               module=False):
    lines = []
    if module:
        lines.append(f"load_module {env.module};")
    lines += [
        f"user {env.nginx_user};",
        "worker_processes 1;",
        "error_log logs/error.log warn;",
        "pid logs/nginx.pid;",
        main,
        "events {",
        "    worker_connections 4096;",
        "}",
        "http {",
        "    access_log off;",
        "    default_type text/plain;",
        "    sendfile on;",
        "    keepalive_requests 1000000;",
        "    client_max_body_size 10m;",
        "    client_header_buffer_size 32k;",
        "    client_body_buffer_size 64k;",
        f"    client_body_temp_path {prefix}/temp/client_body;",
        f"    proxy_temp_path {prefix}/temp/proxy;",
        f"    fastcgi_temp_path {prefix}/temp/fastcgi;",
        f"    uwsgi_temp_path {prefix}/temp/uwsgi;",
        f"    scgi_temp_path {prefix}/temp/scgi;",
        http,
        "    server {",
        f"        listen 127.0.0.1:{port} backlog=4096;",
        "        server_name localhost;",
        "        location /static/ {",
        f"            alias {env.static}/;",
        "        }",
        locations,
        "    }",
        "}",
        ""]
    return "\n".join(lines)


def start_nginx(server, env, prefix, locations, **kw):
    conf = prefix / "conf" / "nginx.conf"
    conf.write_text(nginx_conf(env, prefix, server.port, locations, **kw))
    server.spawn("nginx", [NGINX, "-p", f"{prefix}/", "-c", str(conf),
                           "-e", "logs/error.log", "-g", "daemon off;"],
                 signal.SIGTERM, prefix / "logs" / "error.log")


MODULE_APPS = ("hello", "body64k", "stream", "echo", "sleep", "file1m",
               "cpu")


def module_locations(env):
    # hello world again, in a sub-interpreter: application group "bench"
    return "\n".join(
        f"        location = /{app} {{\n"
        f"            wsgi_pass {env.apps}/{app}.py;\n"
        "        }" for app in MODULE_APPS) + (
        "\n        location = /hello-sub {\n"
        f"            wsgi_pass {env.apps}/hello.py;\n"
        "            wsgi_application_group bench;\n"
        "        }")


def config_nginx_return(server, env):
    """(a) nginx "return 200" and static files: the ceiling."""
    prefix = env.dir(server.name)
    start_nginx(server, env, prefix,
                '        location = /hello {\n'
                '            return 200 "hello";\n'
                '        }')


def config_wsgi_inline(server, env):
    """(b) the module, Python on the event loop."""
    prefix = env.dir(server.name)
    start_nginx(server, env, prefix, module_locations(env), module=True,
                http=f"    wsgi_python_path {env.apps};\n"
                     "    wsgi_thread_pool off;")


def config_wsgi_threads(server, env, priority=None):
    """(c) the module on its default pool "wsgi", declared with 64
    threads, at the default wsgi_thread_priority (auto)."""
    prefix = env.dir(server.name)
    server.handoffs = True
    http = f"    wsgi_python_path {env.apps};"
    if priority:
        http += f"\n    wsgi_thread_priority {priority};"
    start_nginx(server, env, prefix, module_locations(env), module=True,
                main=f"thread_pool wsgi threads={THREADS};", http=http)


def config_wsgi_threads_normal(server, env):
    """(c') the same, its threads always at the worker's priority: the
    static file latency only."""
    config_wsgi_threads(server, env, "normal")


def config_wsgi_threads_idle(server, env):
    """(c'') the same, its threads always at idle priority: the static
    file latency only."""
    config_wsgi_threads(server, env, "idle")


UWSGI_PARAMS = """
            uwsgi_param QUERY_STRING $query_string;
            uwsgi_param REQUEST_METHOD $request_method;
            uwsgi_param CONTENT_TYPE $content_type;
            uwsgi_param CONTENT_LENGTH $content_length;
            uwsgi_param REQUEST_URI $request_uri;
            uwsgi_param PATH_INFO $document_uri;
            uwsgi_param DOCUMENT_ROOT $document_root;
            uwsgi_param SERVER_PROTOCOL $server_protocol;
            uwsgi_param REQUEST_SCHEME $scheme;
            uwsgi_param REMOTE_ADDR $remote_addr;
            uwsgi_param REMOTE_PORT $remote_port;
            uwsgi_param SERVER_PORT $server_port;
            uwsgi_param SERVER_NAME $server_name;"""


def config_uwsgi(server, env):
    """(d) uWSGI, one process of 64 threads, behind nginx uwsgi_pass."""
    d = env.dir(server.name)
    sock = d / "run" / "uwsgi.sock"
    server.spawn("uwsgi", [
        UWSGI, "--plugin", "python3", "--master", "--processes", "1",
        "--uwsgi-socket", str(sock),
        "--threads", str(THREADS),
        "--chmod-socket=666", "--pythonpath", str(env.apps),
        "--wsgi-file", str(env.apps / "router.py"), "--disable-logging",
        "--die-on-term", "--uid", env.user, "--gid", env.group,
        "--listen", "1024", "--buffer-size", "32768"],
        signal.SIGINT, d / "logs" / "uwsgi.log")
    wait_socket(server, sock)
    front = env.dir(server.name + "-front")
    start_nginx(server, env, front,
                "        location / {\n"
                f"            uwsgi_pass unix:{sock};{UWSGI_PARAMS}\n"
                "        }")


def gunicorn(server, env, worker_class, extra=()):
    d = env.dir(server.name)
    sock = d / "run" / "gunicorn.sock"
    server.spawn("gunicorn", [
        PYTHON, "-m", "gunicorn", "--workers", "1",
        "--worker-class", worker_class, *extra,
        "--bind", f"unix:{sock}", "--chdir", str(env.apps),
        "--user", env.user, "--group", env.group, "--umask", "0",
        "--log-level", "warning", "--worker-tmp-dir", str(d / "run"),
        "--backlog", "1024", "router:application"],
        signal.SIGINT, d / "logs" / "gunicorn.log")
    wait_socket(server, sock)
    front = env.dir(server.name + "-front")
    start_nginx(server, env, front,
                "        location / {\n"
                f"            proxy_pass http://unix:{sock};\n"
                "            proxy_set_header Host $host;\n"
                "        }")


def config_gunicorn_sync(server, env):
    """(e) gunicorn, one sync worker, behind nginx proxy_pass."""
    gunicorn(server, env, "sync")


def config_gunicorn_gthread(server, env):
    """(f) gunicorn, one gthread worker of 64 threads, behind nginx."""
    gunicorn(server, env, "gthread", ("--threads", str(THREADS)))


def wait_socket(server, path):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        server.check_running()
        if path.exists():
            return
        time.sleep(0.05)
    raise StartError(f"no socket {path} after {START_TIMEOUT:.0f}s: "
                     f"{server.log_tail()}")


def apache_conf(env, d, port, wsgi):
    mods = [("mpm_event_module", "mod_mpm_event.so"),
            ("authz_core_module", "mod_authz_core.so"),
            ("wsgi_module", "mod_wsgi.so")]
    return "\n".join(
        [f"LoadModule {name} {APACHE_MODULES / so}" for name, so in mods]
        + [f"ServerRoot {d}",
           f"DefaultRuntimeDir {d}/run",
           f"PidFile {d}/run/apache2.pid",
           f"Mutex file:{d}/run default",
           f"ErrorLog {d}/logs/error.log",
           "LogLevel warn",
           f"Listen 127.0.0.1:{port}",
           "ServerName 127.0.0.1",
           f"User {env.user}",
           f"Group {env.group}",
           "StartServers 1",
           "ServerLimit 1",
           f"ThreadLimit {THREADS}",
           f"ThreadsPerChild {THREADS}",
           f"MaxRequestWorkers {THREADS}",
           "MinSpareThreads 1",
           f"MaxSpareThreads {THREADS}",
           "MaxConnectionsPerChild 0",
           "KeepAlive On",
           "MaxKeepAliveRequests 0",
           "KeepAliveTimeout 5",
           f"DocumentRoot {env.static}",
           f"<Directory {env.root}>",
           "    Require all granted",
           "</Directory>",
           f"WSGISocketPrefix {d}/run/wsgi",
           wsgi,
           f"WSGIScriptAlias / {env.apps}/router.py",
           "WSGIApplicationGroup %{GLOBAL}",
           ""])


def start_apache(server, env, wsgi):
    d = env.dir(server.name)
    conf = d / "conf" / "apache2.conf"
    conf.write_text(apache_conf(env, d, server.port, wsgi))
    # Debian's apache2 reads these when a config uses them (ours does
    # not, apache2ctl sets them); keep them away from /var/run/apache2
    aenv = dict(os.environ,
                APACHE_RUN_DIR=f"{d}/run",
                APACHE_PID_FILE=f"{d}/run/apache2.pid",
                APACHE_LOCK_DIR=f"{d}/run",
                APACHE_LOG_DIR=f"{d}/logs",
                APACHE_RUN_USER=env.user,
                APACHE_RUN_GROUP=env.group,
                LANG="C")
    server.spawn("apache2", [APACHE, "-d", str(d), "-f", str(conf),
                             "-DFOREGROUND"],
                 signal.SIGTERM, d / "logs" / "error.log", env=aenv)


def config_apache_embedded(server, env):
    """(g) Apache mod_wsgi embedded: one mpm_event child of 64 threads."""
    start_apache(server, env, f"WSGIPythonPath {env.apps}")


def config_apache_daemon(server, env):
    """(h) Apache mod_wsgi daemon mode: one process of 64 threads."""
    start_apache(server, env, "\n".join([
        "WSGIRestrictEmbedded On",
        f"WSGIDaemonProcess bench processes=1 threads={THREADS} "
        f"python-path={env.apps} display-name=wsgi-bench-daemon",
        "WSGIProcessGroup bench"]))


@dataclass
class Config:
    key: str
    title: str
    start: object
    peer: bool = False
    module: bool = False
    latency_only: bool = False


CONFIGS = [
    Config("nginx", "nginx return 200 / static", config_nginx_return),
    Config("inline", "nginx mod_wsgi inline", config_wsgi_inline,
           module=True),
    Config("threads", f"nginx mod_wsgi thread pool ({THREADS})",
           config_wsgi_threads, module=True),
    Config("threads-normal", f"nginx mod_wsgi thread pool ({THREADS}), "
           "wsgi_thread_priority normal", config_wsgi_threads_normal,
           module=True, latency_only=True),
    Config("threads-idle", f"nginx mod_wsgi thread pool ({THREADS}), "
           "wsgi_thread_priority idle", config_wsgi_threads_idle,
           module=True, latency_only=True),
    Config("uwsgi", f"uWSGI (1 process, {THREADS} threads) + nginx",
           config_uwsgi, peer=True),
    Config("gunicorn-sync", "gunicorn sync (1 worker) + nginx",
           config_gunicorn_sync, peer=True),
    Config("gunicorn-gthread",
           f"gunicorn gthread (1 worker, {THREADS} threads) + nginx",
           config_gunicorn_gthread, peer=True),
    Config("apache-embedded",
           f"Apache mod_wsgi embedded (event, {THREADS} threads)",
           config_apache_embedded, peer=True),
    Config("apache-daemon",
           f"Apache mod_wsgi daemon (1 process, {THREADS} threads)",
           config_apache_daemon, peer=True),
]
CONFIG_KEYS = [c.key for c in CONFIGS]


# --------------------------------------------------------------- workloads

@dataclass
class Workload:
    key: str
    title: str
    path: str
    conns: int = DEFAULT_CONNS
    post: bool = False
    check: object = None          # (status, body) -> error text or None
    module_only: bool = False     # no peer serves it


def expect_body(expected):
    def check(status, body):
        if status != 200:
            return f"status {status}"
        if body != expected:
            return f"wrong body ({len(body)} bytes)"
        return None
    return check


WORKLOADS = [
    Workload("hello", "hello world", "/hello",
             check=expect_body(b"hello")),
    Workload("subinterp", "hello world in a sub-interpreter", "/hello-sub",
             check=expect_body(b"hello"), module_only=True),
    Workload("body64k", "64 KiB body", "/body64k",
             check=expect_body(BODY_64K)),
    Workload("stream", "100 x 1 KiB streamed chunks (generator)", "/stream",
             check=expect_body(b"x" * 102400)),
    Workload("echo", "16 KiB POST echoed back", "/echo", post=True,
             check=expect_body(b"a" * ECHO_SIZE)),
    Workload("sleep", "application sleeping 10 ms", "/sleep",
             conns=SLEEP_CONNS, check=expect_body(b"slept")),
    Workload("file1m", "1 MiB file through wsgi.file_wrapper", "/file1m",
             check=expect_body(FILE_1M)),
]

# the extra row in the 64 KiB table: the same bytes as a static file
STATIC_64K = Workload("static64k", "nginx static 64 KiB", "/static/64k.bin",
                      check=expect_body(BODY_64K))
STATIC_SMALL = "/static/small.txt"

# the names --only knows; "static-load" is bench_static_latency()
WORKLOAD_KEYS = [w.key for w in WORKLOADS] + ["static-load"]


# ------------------------------------------------------------ measurement

@dataclass
class Run:
    requests: int = 0
    rps: float = 0.0
    p99_us: float = 0.0
    errors: int = 0
    timeouts: int = 0
    cpu_us: float = None
    cpu_ticks: int = 0
    handoffs: float = None      # thread pool rounds per request
    raw: str = ""


UNITS_US = {"us": 1.0, "ms": 1000.0, "s": 1e6, "m": 60e6}


def parse_duration_us(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"bad wrk duration {text!r}")
    return float(m.group(1)) * UNITS_US[m.group(2)]


def parse_wrk(out):
    run = Run(raw=out)
    m = re.search(r"(\d+) requests in ", out)
    if not m:
        raise RuntimeError(f"unexpected wrk output: {out[-300:]!r}")
    run.requests = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    run.rps = float(m.group(1)) if m else 0.0
    m = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    run.p99_us = parse_duration_us(m.group(1)) if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        run.errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    if m:
        run.errors += sum(int(x) for x in m.groups())
        run.timeouts = int(m.group(4))
    return run


class Load:
    """wrk running in the background, pinned to the client CPU."""

    active = set()

    def __init__(self, port, path, conns, secs, script=None):
        cmd = [WRK, "-t1", f"-c{conns}", f"-d{secs}s", "--latency",
               "--timeout", "10s"]
        if script:
            cmd += ["-s", str(script)]
        cmd.append(f"http://127.0.0.1:{port}{path}")
        self.secs = secs
        self.popen = subprocess.Popen(pinned(CLIENT_CPU, cmd),
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True,
                                      start_new_session=True)
        Load.active.add(self.popen)

    def result(self):
        try:
            out, _ = self.popen.communicate(timeout=self.secs + 60)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise RuntimeError("wrk did not finish in time") from None
        finally:
            Load.active.discard(self.popen)
        if self.popen.returncode != 0:
            raise RuntimeError(f"wrk failed ({self.popen.returncode}): "
                               f"{out.strip()[-300:]}")
        return parse_wrk(out)

    @classmethod
    def kill_all(cls):
        for p in list(cls.active):
            if p.poll() is None:
                p.kill()
                p.wait()
        cls.active.clear()


def wrk(server, workload, secs, env, conns=None):
    script = env.post_lua if workload.post else None
    return Load(server.port, workload.path, conns or workload.conns, secs,
                script).result()


def pool_sleeps(pids):
    """How many times the threads of these processes, but their main
    threads, went to sleep: a thread pool's runner does once per round."""
    total = 0
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            if tid != pid:
                total += status_field(f"/proc/{pid}/task/{tid}/status",
                                      "voluntary_ctxt_switches") or 0
    return total


def handoff_floor(env):
    """bench/handoff.c, built and run on the server's CPU: microseconds
    per round trip between two threads that take turns on one CPU, and
    None; or None and why not."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None, "no C compiler"
    exe = env.root / "handoff"
    try:
        subprocess.run([cc, "-O2", "-pthread", "-o", str(exe),
                        str(BENCH_DIR / "handoff.c")], check=True,
                       capture_output=True, timeout=120)
        out = subprocess.run(pinned(SERVER_CPU, [str(exe), SERVER_CPU]),
                             check=True, capture_output=True, text=True,
                             timeout=120).stdout
        return float(out.strip()), None
    except (OSError, ValueError, subprocess.CalledProcessError,
            subprocess.TimeoutExpired) as e:
        return None, str(e)[:200]


def measure(server, workload, secs, env):
    """One wrk run with the server's CPU time around it (and, for the
    module on a thread pool, the pool's rounds)."""
    before = server.cpu()
    sleeps = pool_sleeps(before) if server.handoffs else 0
    run = wrk(server, workload, secs, env)
    after = server.cpu()
    ticks = sum(after[p] - before.get(p, 0) for p in after)
    run.cpu_ticks = ticks
    if run.requests:
        run.cpu_us = ticks / CLK_TCK * 1e6 / run.requests
        if server.handoffs:
            run.handoffs = (pool_sleeps(after) - sleeps) / run.requests
    return run


@dataclass
class Result:
    """The medians of a config's runs on a workload, or why there are
    none."""

    rps: float = None
    p99_us: float = None
    cpu_us: float = None
    cpu_ticks: int = 0        # the fewest clock ticks a run measured
    handoffs: float = None    # thread pool rounds per request
    errors: int = 0
    runs: int = 0
    na: str = None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def check_response(server, workload):
    body = b"a" * ECHO_SIZE if workload.post else None
    status, data = http_get(server.port, workload.path,
                            "POST" if workload.post else "GET", body)
    return workload.check(status, data)


def bench_workload(server, workload, opts, env):
    try:
        problem = check_response(server, workload)
        if problem:
            return Result(na=f"bad response: {problem}")
        wrk(server, workload, opts.warmup, env)
        runs = []
        for i in range(opts.runs):
            run = measure(server, workload, opts.duration, env)
            runs.append(run)
            log(f"    {workload.key} run {i + 1}/{opts.runs}: "
                f"{run.rps:9.0f} req/s  p99 {fmt_us(run.p99_us):>8}  "
                f"{fmt_num(run.cpu_us)} us/req"
                + (f"  {run.errors} errors" if run.errors else ""))
        server.check_running()
    except (OSError, RuntimeError, StartError, ValueError,
            subprocess.TimeoutExpired) as e:
        return Result(na=str(e)[:200])
    return Result(rps=median([r.rps for r in runs]),
                  p99_us=median([r.p99_us for r in runs]),
                  cpu_us=median([r.cpu_us for r in runs]),
                  cpu_ticks=min(r.cpu_ticks for r in runs),
                  handoffs=median([r.handoffs for r in runs]),
                  errors=sum(r.errors for r in runs), runs=len(runs))


@dataclass
class Latency:
    """Static file p99 alone and while another wrk loads an app."""

    idle_p99: float = None
    loads: dict = field(default_factory=dict)   # load key -> (p99, rps)
    na: str = None


LATENCY_LOADS = [
    ("cpu", "CPU-bound app (~1 ms of Python)", "/cpu", CPU_LOAD_CONNS),
    ("sleep", "sleep-10ms app", "/sleep", SLEEP_CONNS),
]


def probe_p99(run):
    """p99 of the static probe; infinite when more than 1% of its requests
    timed out (wrk leaves those out of its percentiles) or none
    completed."""
    if run.requests == 0 or run.timeouts * 100 > run.requests:
        return float("inf")
    return run.p99_us


def settle(server, timeout=10.0):
    """Waits until the server answers a static request at once again: an
    inline worker still runs the requests queued under the last load."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t = time.monotonic()
        http_get(server.port, STATIC_SMALL)
        if time.monotonic() - t < 0.005:
            return
        time.sleep(0.05)


def bench_static_latency(server, opts, env):
    """Static p99 idle and under each load, the median of opts.runs each;
    the idle and loaded probes alternate, so that a burst of other work on
    the machine doesn't land on one of them only."""
    res = Latency()
    secs = opts.duration
    static = Workload("static", "static", STATIC_SMALL, conns=STATIC_CONNS)
    idle = []
    loaded = {key: ([], []) for key, _, _, _ in LATENCY_LOADS}
    try:
        wrk(server, static, opts.warmup, env)
        for _ in range(opts.runs):
            idle.append(probe_p99(wrk(server, static, secs, env)))
            log(f"    static p99 idle: {fmt_us(idle[-1])}")
            for key, _, path, conns in LATENCY_LOADS:
                load = Load(server.port, path, conns, secs + 2)
                time.sleep(1.0)
                probe = wrk(server, static, secs, env)
                app = load.result()
                settle(server)
                loaded[key][0].append(probe_p99(probe))
                loaded[key][1].append(app.rps)
                log(f"    static p99 under {key} load: "
                    f"{fmt_us(loaded[key][0][-1])} ({app.rps:.0f} req/s "
                    f"on {path})")
        server.check_running()
    except (OSError, RuntimeError, StartError, ValueError,
            subprocess.TimeoutExpired) as e:
        res.na = str(e)[:200]
        return res
    res.idle_p99 = median(idle)
    for key, (p99s, rpss) in loaded.items():
        res.loads[key] = (median(p99s), median(rpss))
    return res


# the ratio targets, measured again with the servers taking turns: nginx,
# inline and thread pool all started, one run each per round
INTERLEAVED = [("nginx", "hello"), ("inline", "hello"), ("threads", "hello"),
               ("nginx", "static64k"), ("inline", "body64k"),
               ("threads", "body64k"), ("inline", "echo"),
               ("threads", "echo"), ("inline", "subinterp"),
               ("threads", "subinterp")]
# --only ...,subinterp: its target's turns alone
SUBINTERP_TURNS = [("inline", "hello"), ("inline", "subinterp"),
                   ("threads", "hello"), ("threads", "subinterp")]
INTERLEAVED_ROUNDS = 5


def bench_interleaved(report, opts, env, cells=INTERLEAVED):
    """The machine's speed drifts over the minutes between one
    configuration's block of runs and the next one's.  For the ratios the
    targets name, the three servers run side by side and take turns, round
    after round; each round gives a ratio, and the median of those is
    reported."""
    configs = {c.key: c for c in CONFIGS}
    workloads = {w.key: w for w in WORKLOADS + [STATIC_64K]}
    servers = {}
    try:
        for key in dict.fromkeys(c for c, _ in cells):
            server = Server(f"{key}-turns", free_port())
            servers[key] = server
            configs[key].start(server, env)
            wait_ready(server)
        for ckey, wkey in cells:
            wrk(servers[ckey], workloads[wkey], opts.warmup, env)
        for i in range(INTERLEAVED_ROUNDS):
            for ckey, wkey in cells:
                run = measure(servers[ckey], workloads[wkey], opts.duration,
                              env)
                report.turns.setdefault((ckey, wkey), []).append(run.cpu_us)
            log(f"    round {i + 1}/{INTERLEAVED_ROUNDS}: " + ", ".join(
                f"{c}/{w} {fmt_num(report.turns[c, w][-1])}"
                for c, w in cells))
        for server in servers.values():
            server.check_running()
    except (OSError, RuntimeError, StartError, ValueError,
            subprocess.TimeoutExpired) as e:
        report.turns_na = str(e)[:200]
    finally:
        for key, server in servers.items():
            server.stop()
            report.logs[server.name] = log_problems(server)


def turns_text(ratios):
    return (f"median of {len(ratios)} rounds taking turns ("
            + " ".join(f"{x:.2f}" for x in ratios) + ")")


def turn_ratio(report, ckey, wkey, rkey, rwkey):
    """The median of the rounds' ratios, and the rounds' own."""
    a = report.turns.get((ckey, wkey), [])
    r = report.turns.get((rkey, rwkey), [])
    ratios = [x / y for x, y in zip(a, r) if x and y]
    return (statistics.median(ratios) if ratios else None), ratios


# a CPU-bound process that is not nginx's: a reference for the CPU-bound
# app's latency, since the server's processes share one CPU
HOG = [PYTHON, "-c", "import time\nend = time.time() + {secs}\n"
       "while time.time() < end:\n    pass\n"]


def bench_static_reference(server, opts, env):
    """Static p99 of plain nginx idle, and next to a CPU-bound process
    pinned to the server's CPU: what sharing a CPU costs by itself."""
    res = Latency()
    secs = opts.duration
    static = Workload("static", "static", STATIC_SMALL, conns=STATIC_CONNS)
    idle, hogged = [], []
    try:
        wrk(server, static, opts.warmup, env)
        for _ in range(opts.runs):
            idle.append(probe_p99(wrk(server, static, secs, env)))
            cmd = [a.replace("{secs}", str(secs + 3)) for a in HOG]
            hog = subprocess.Popen(pinned(SERVER_CPU, cmd))
            try:
                time.sleep(1.0)
                hogged.append(probe_p99(wrk(server, static, secs, env)))
            finally:
                hog.kill()
                hog.wait()
            log(f"    static p99 idle {fmt_us(idle[-1])}, next to a "
                f"CPU-bound process {fmt_us(hogged[-1])}")
    except (OSError, RuntimeError, ValueError,
            subprocess.TimeoutExpired) as e:
        res.na = str(e)[:200]
        return res
    res.idle_p99 = median(idle)
    res.loads["hog"] = (median(hogged), None)
    return res


# log lines worth a look after a run
LOG_PROBLEM_RE = re.compile(
    r"\[(\w+:)?(emerg|alert|crit|error)\]|exited on signal|Traceback|"
    r"\bERROR\b|\bCRITICAL\b|segmentation|core dumped", re.I)

# ... except a client that went away: wrk closes its connections at the
# end of a run, in the middle of responses (Apache logs these at error;
# a real exception still shows its Traceback line)
LOG_BENIGN_RE = re.compile(
    r"failed to write response data|Broken pipe|Connection reset by peer|"
    r"Exception occurred processing WSGI script|OSError: write error")


def log_problems(server):
    """[(label, file name, count, first lines)] of each log's problems."""
    problems = []
    for label, path in server.logs:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        bad = [ln for ln in lines if LOG_PROBLEM_RE.search(ln)
               and not LOG_BENIGN_RE.search(ln)]
        if bad:
            problems.append((label, path.name, len(bad), bad[:5]))
    return problems


# ----------------------------------------------------------------- running

@dataclass
class Report:
    opts: object
    env: object
    reference: Latency = None                      # nginx + CPU hog
    turns: dict = field(default_factory=dict)      # (config, wl) -> [us]
    turns_na: str = None
    results: dict = field(default_factory=dict)    # (config, wl) -> Result
    latency: dict = field(default_factory=dict)    # config -> Latency
    na: dict = field(default_factory=dict)         # config -> reason
    logs: dict = field(default_factory=dict)       # config -> problems
    started: datetime.datetime = None
    elapsed: float = 0.0
    load_before: tuple = ()
    load_after: tuple = ()
    handoff_us: float = None                       # bench/handoff.c
    handoff_na: str = None


def wanted(opts, key, keys):
    """--only NAME,...: names of configs and of workloads."""
    names = set(opts.only or ())
    picked = names & set(keys)
    return not picked or key in picked


def run_config(config, env, opts, report):
    workloads = [w for w in WORKLOADS
                 if wanted(opts, w.key, WORKLOAD_KEYS)]
    if config.latency_only:
        workloads = []
    if not config.module:
        workloads = [w for w in workloads if not w.module_only]
    if config.key == "nginx":
        workloads = [w for w in workloads if w.key == "hello"]
        if wanted(opts, "body64k", WORKLOAD_KEYS):
            workloads.append(STATIC_64K)
    latency = wanted(opts, "static-load", WORKLOAD_KEYS) and (
        config.module or config.key == "nginx")
    if not workloads and not latency:
        return

    log(f"== {config.title}")
    server = Server(config.key, free_port())
    try:
        try:
            config.start(server, env)
            wait_ready(server)
        except (StartError, OSError) as e:
            report.na[config.key] = str(e)
            log(f"   n/a: {e}")
            return
        for w in workloads:
            result = bench_workload(server, w, opts, env)
            report.results[config.key, w.key] = result
            if result.na:
                log(f"    {w.key}: n/a ({result.na})")
        if latency and config.key == "nginx":
            report.reference = bench_static_reference(server, opts, env)
        elif latency:
            report.latency[config.key] = bench_static_latency(server, opts,
                                                              env)
    finally:
        server.stop()
        report.logs[config.key] = log_problems(server)



# ----------------------------------------------------------------- report

def fmt_us(us):
    if us is None or us != us:
        return "-"
    if us == float("inf"):
        return "timeouts"
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.0f} us"


def fmt_num(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def fmt_ratio(a, b):
    if a is None or not b:
        return "-"
    if a == float("inf"):
        return "inf"
    return f"{a / b:.2f}x"


def best_peer_cpu(report, wkey):
    peers = [report.results.get((c.key, wkey)) for c in CONFIGS if c.peer]
    cpus = [(r.cpu_us) for r in peers if r and r.cpu_us]
    return min(cpus) if cpus else None


def get(report, ckey, wkey):
    return report.results.get((ckey, wkey))


def table(report, workload, extra_rows=()):
    base = get(report, "nginx", "hello")
    base_cpu = base.cpu_us if base else None
    best = best_peer_cpu(report, workload.key)
    out = ["| config | req/s | p99 | CPU us/req | "
           "ratio vs nginx return 200 (CPU) | ratio vs best peer (CPU) |",
           "|---|---:|---:|---:|---:|---:|"]
    rows = list(extra_rows) + [(c.title, c.key, workload.key)
                               for c in CONFIGS if c.key != "nginx"
                               and (c.module or not workload.module_only)]
    notes = []
    imprecise = False
    for title, ckey, wkey in rows:
        if ckey in report.na:
            r = Result(na=report.na[ckey])
        else:
            r = get(report, ckey, wkey)
        if r is None:
            continue
        if r.na:
            out.append(f"| {title} | n/a ({md(r.na)}) | | | | |")
            continue
        mark = ""
        if r.errors:
            mark = " (!)"
            notes.append(f"(!) {title}: {r.errors} failed requests "
                         "(non-2xx, connect/write errors or timeouts).")
        approx = ""
        if r.cpu_ticks < PRECISE_TICKS:
            approx = "~"
            imprecise = True
        out.append(f"| {title}{mark} | {r.rps:.0f} | {fmt_us(r.p99_us)} | "
                   f"{approx}{fmt_num(r.cpu_us)} | "
                   f"{fmt_ratio(r.cpu_us, base_cpu)} "
                   f"| {fmt_ratio(r.cpu_us, best)} |")
    if imprecise:
        notes.append(f"~: a run used less than {PRECISE_TICKS / CLK_TCK:g} s "
                     f"of CPU, counted in {1000 / CLK_TCK:g} ms clock ticks; "
                     "its CPU us/req is rough.")
    return out + ([""] + notes if notes else [])


def md(text):
    return str(text).replace("|", "/").replace("\n", " ")


@dataclass
class Target:
    text: str
    measured: str
    ok: object          # True, False or None (not measured)


def targets(report):
    t = []
    base = get(report, "nginx", "hello")

    def cpu(ckey, wkey):
        r = get(report, ckey, wkey)
        return r.cpu_us if r and not r.na else None

    def ratio_target(text, ckey, wkey, rkey, rwkey, limit, ref_name):
        tr, ratios = turn_ratio(report, ckey, wkey, rkey, rwkey)
        if tr is not None:
            t.append(Target(text, f"{tr:.3f}x, " + turns_text(ratios),
                            tr <= limit))
            return
        c = cpu(ckey, wkey)
        refc = cpu(rkey, rwkey)
        if c is None or refc is None:
            t.append(Target(text, "not measured", None))
            return
        t.append(Target(text, f"{c:.1f} us vs {ref_name} {refc:.1f} us = "
                        f"{c / refc:.2f}x", c / refc <= limit))

    ratio_target("hello world, inline: CPU <= 1.25x nginx return 200",
                 "inline", "hello", "nginx", "hello", 1.25, "return 200")
    ratio_target("hello world, thread pool: CPU <= 2.0x nginx return 200",
                 "threads", "hello", "nginx", "hello", 2.0, "return 200")
    for ckey, mode in (("inline", "inline"), ("threads", "thread pool")):
        ratio_target(f"hello world in a sub-interpreter, {mode}: CPU <= "
                     "1.1x the same in the main interpreter", ckey,
                     "subinterp", ckey, "hello", 1.1, "main interpreter")
    for ckey, mode in (("inline", "inline"), ("threads", "thread pool")):
        ratio_target(f"64 KiB body, {mode}: CPU <= 1.3x nginx static of "
                     "the same bytes", ckey, "body64k", "nginx",
                     "static64k", 1.3, "static")
    # bjoern is not packaged in Debian: its cost in the issue, relative to
    # nginx's return 200 measured there, applied to this run's return 200
    basec = base.cpu_us if base and not base.na else None
    for ckey, mode in (("inline", "inline"), ("threads", "thread pool")):
        c = cpu(ckey, "echo")
        text = (f"16 KiB echo, {mode}: CPU <= bjoern's ({BJOERN_ECHO_US} us "
                f"where nginx return 200 cost {ISSUE_RETURN200_US} us, "
                f"{BJOERN_ECHO_US / ISSUE_RETURN200_US:.2f}x; scaled to "
                "this run's return 200)")
        limit = BJOERN_ECHO_US / ISSUE_RETURN200_US
        tr, ratios = turn_ratio(report, ckey, "echo", "nginx", "hello")
        if tr is not None:
            t.append(Target(text, f"{tr:.3f}x return 200 (bjoern {limit:.2f}x"
                            "), " + turns_text(ratios), tr <= limit))
            continue
        if c is None or basec is None:
            t.append(Target(text, "not measured", None))
            continue
        scaled = limit * basec
        t.append(Target(text, f"{c:.1f} us = {c / basec:.2f}x return 200 "
                        f"{basec:.1f} us, vs bjoern scaled {scaled:.1f} us "
                        f"(unscaled {BJOERN_ECHO_US} us)", c <= scaled))
    best = best_peer_cpu(report, "stream")
    for ckey, mode in (("inline", "inline"), ("threads", "thread pool")):
        c = cpu(ckey, "stream")
        if c is None or best is None:
            t.append(Target(f"100 x 1 KiB stream, {mode}: CPU <= 1/4 of "
                            "the best peer", "not measured", None))
        else:
            t.append(Target(f"100 x 1 KiB stream, {mode}: CPU <= 1/4 of "
                            "the best peer",
                            f"{c:.1f} us vs best peer {best:.1f} us = "
                            f"{c / best:.2f}x", c <= best / 4))
    r = get(report, "threads", "sleep")
    ok = None if not r or r.na else (r.rps >= 4750 and not r.errors)
    t.append(Target(f"sleep 10 ms, thread pool, {SLEEP_CONNS} connections: "
                    ">= 4750 req/s",
                    "not measured" if ok is None else
                    f"{r.rps:.0f} req/s"
                    + (f", {r.errors} failed" if r.errors else ""), ok))
    for ckey, mode in (("threads", "thread pool (priority auto, the "
                                   "default)"),
                       ("threads-idle", "thread pool, priority idle")):
        lat = report.latency.get(ckey)
        for key, what, _, _ in LATENCY_LOADS:
            text = (f"{mode}: static p99 under the {what} load within 2x "
                    "idle")
            if not lat or lat.na or key not in lat.loads or not lat.idle_p99:
                t.append(Target(text, "not measured", None))
                continue
            p99 = lat.loads[key][0]
            t.append(Target(text, f"{fmt_us(p99)} vs idle "
                            f"{fmt_us(lat.idle_p99)} = "
                            f"{fmt_ratio(p99, lat.idle_p99)}",
                            p99 <= 2 * lat.idle_p99))
    return t


def command_output(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"? ({e})"
    return (p.stdout + p.stderr).strip().splitlines()[0] if (
        p.stdout + p.stderr).strip() else "?"


def version_of(cmd):
    """The first version number in the first line cmd prints."""
    text = command_output(cmd)
    m = re.search(r"\d+(\.\d+)+[\w.+~-]*", text)
    return m.group(0) if m else text


def deb_version(pkg):
    return command_output(["dpkg-query", "-W", "-f", "${Version}", pkg])


def git_describe():
    rev = command_output(["git", "-C", str(REPO_ROOT), "rev-parse",
                          "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status",
                            "--porcelain", "--", "src", "config"],
                           capture_output=True, text=True).stdout.strip()
    return rev + (" (src/ modified)" if dirty else "")


def module_time(path):
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return "?"
    return datetime.datetime.fromtimestamp(mtime).astimezone().strftime(
        DATE_FORMAT)


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def fmt_load(load):
    return " ".join(f"{x:.2f}" for x in load)


def environment_lines(report):
    o = report.opts
    return [
        f"- date: {report.started:{DATE_FORMAT}}",
        f"- kernel: {platform.system()} {platform.release()} "
        f"{platform.machine()}; {os.cpu_count()} CPUs, {cpu_model()}",
        f"- load average before {fmt_load(report.load_before)}, after "
        f"{fmt_load(report.load_after)} (the benchmark itself keeps about "
        "2 runnable; more means other work shared the CPUs)",
        f"- nginx: {version_of([NGINX, '-v'])}",
        f"- module: {o.module} (built {report.env.module_built}); "
        f"repository at {report.env.repository}",
        f"- python: {command_output([PYTHON, '-V'])}",
        f"- uwsgi: {command_output([UWSGI, '--version'])} "
        f"(uwsgi-plugin-python3 {deb_version('uwsgi-plugin-python3')})",
        "- gunicorn: " + version_of([PYTHON, "-m", "gunicorn", "--version"]),
        f"- apache: {version_of([APACHE, '-v'])}, mod_wsgi "
        f"{deb_version('libapache2-mod-wsgi-py3')}",
        f"- wrk: {version_of([WRK, '-v'])}",
        f"- nginx workers run as `user {report.env.nginx_user}`"
        + (": this machine's root lacks CAP_SYS_RESOURCE, so an nginx "
           "master cannot raise RLIMIT_NICE for unprivileged workers, "
           "which `wsgi_thread_priority auto` needs to take a thread back "
           "from SCHED_IDLE (root workers may)" if report.env.nginx_root
           else ""),
        f"- method: {o.runs} run(s) of {o.duration} s after a "
        f"{o.warmup} s warm-up, medians; servers on CPU {SERVER_CPU}, "
        f"wrk -t1 on CPU {CLIENT_CPU}; {DEFAULT_CONNS} connections "
        f"unless said; CPU = utime+stime of all the server's processes "
        f"(front nginx included) / requests wrk completed; "
        f"took {report.elapsed / 60:.1f} min",
    ]


def render(report):
    o = report.opts
    lines = ["# nginx mod_wsgi benchmarks", ""]
    if o.quick:
        lines += ["**Quick run** (--quick): one short run per cell; "
                  "indicative only.", ""]
    lines += environment_lines(report) + [""]

    for w in WORKLOADS:
        if not any(k[1] == w.key for k in report.results):
            continue
        extra = []
        if w.key == "hello":
            extra = [('nginx `return 200 "hello"`', "nginx", "hello")]
        elif w.key == "body64k":
            extra = [("nginx static file, same 64 KiB", "nginx",
                      "static64k")]
        conns = f", {w.conns} connections"
        lines += [f"## {w.title} ({'POST' if w.post else 'GET'} "
                  f"{w.path}{conns})", ""]
        lines += table(report, w, extra) + [""]

    if report.latency:
        lines += [f"## Static file latency under load (GET {STATIC_SMALL}, "
                  f"{STATIC_CONNS} connections, same nginx)", "",
                  "| config | static p99 idle | "
                  + " | ".join(f"static p99 under {what} ({conns} conns) | "
                               "that app's req/s"
                               for _, what, _, conns in LATENCY_LOADS)
                  + " |",
                  "|---|---:|" + "---:|---:|" * len(LATENCY_LOADS)]
        for c in CONFIGS:
            lat = report.latency.get(c.key)
            if not lat:
                continue
            if lat.na:
                lines.append(f"| {c.title} | n/a ({md(lat.na)}) |"
                             + " |" * (2 * len(LATENCY_LOADS)))
                continue
            cells = [fmt_us(lat.idle_p99)]
            for key, _, _, _ in LATENCY_LOADS:
                p99, rps = lat.loads.get(key, (None, None))
                cells += [f"{fmt_us(p99)} ({fmt_ratio(p99, lat.idle_p99)})",
                          fmt_num(rps, 0)]
            lines.append(f"| {c.title} | " + " | ".join(cells) + " |")
        lines.append("")
        ref = report.reference
        if ref and not ref.na and ref.idle_p99:
            p99 = ref.loads["hog"][0]
            lines += ["Reference: nginx's own static file, with no Python "
                      "in nginx, p99 "
                      f"{fmt_us(ref.idle_p99)} idle and {fmt_us(p99)} "
                      f"({fmt_ratio(p99, ref.idle_p99)}) next to a "
                      "CPU-bound process pinned to the same CPU: what "
                      "sharing the server's one CPU with CPU-bound work "
                      "costs by itself.", ""]

    lines += ["## Targets", "", "| target | measured | result |",
              "|---|---|---|"]
    for tg in targets(report):
        result = {True: "PASS", False: "FAIL", None: "n/a"}[tg.ok]
        lines.append(f"| {tg.text} | {tg.measured} | **{result}** |")
    lines.append("")
    lines += handoff_lines(report)

    if report.na:
        lines += ["## Not measured", ""]
        for key, why in report.na.items():
            lines.append(f"- {title_of(key)}: n/a ({md(why)})")
        lines.append("")

    lines += ["## Server logs", ""]
    clean = True
    for key, problems in report.logs.items():
        for label, name, count, sample in problems:
            clean = False
            lines.append(f"- {title_of(key)}, {label} {name}: {count} "
                         "line(s) of concern, first ones:")
            lines += [f"  - `{s.strip()[:300]}`" for s in sample]
    if clean:
        lines.append("No errors, alerts, tracebacks or crashes in any "
                     "server's log.")
    lines.append("")
    return "\n".join(lines)


def handoff_lines(report):
    """What the thread pool's rounds cost at least, next to what it costs
    more than inline mode."""
    rows = []
    for w in WORKLOADS:
        pool = report.results.get(("threads", w.key))
        inline = report.results.get(("inline", w.key))
        if not pool or pool.na or pool.handoffs is None or w.key == "sleep":
            continue
        floor = (fmt_num(pool.handoffs * report.handoff_us, 2)
                 if report.handoff_us else "n/a")
        more = (fmt_num(pool.cpu_us - inline.cpu_us, 2)
                if inline and not inline.na and inline.cpu_us is not None
                and pool.cpu_us is not None else "n/a")
        rows.append(f"| {w.title} | {pool.handoffs:.3f} | {floor} | "
                    f"{more} |")
    if not rows:
        return []
    floor = (f"{report.handoff_us:.2f} us" if report.handoff_us
             else f"n/a ({md(report.handoff_na or 'not measured')})")
    return ["## The thread pool's rounds", "",
            "A round: the event loop wakes a runner, which runs the steps "
            "queued so far and sleeps again; on the server's one CPU, that "
            "is two wake-ups and two context switches. Their floor on this "
            "machine, two bare threads taking turns through semaphores on "
            f"CPU {SERVER_CPU} (bench/handoff.c): **{floor}** per round.",
            "",
            "| workload | rounds per request | x floor, us per request | "
            "thread pool minus inline, us per request |",
            "|---|---:|---:|---:|"] + rows + [""]


def title_of(key):
    for c in CONFIGS:
        if c.key == key:
            return c.title
    return key


# ------------------------------------------------------------ memory check

def worker_pids(server):
    """The nginx worker processes (children of the master)."""
    master = server.procs[0].popen.pid
    parents = all_parents()
    return sorted(p for p, pp in parents.items() if pp == master)


def memory_check(env, opts):
    total = opts.memory_requests
    step = max(1, total // 10)
    server = Server("memory", free_port())
    lines = ["# nginx mod_wsgi memory check", "",
             f"- date: {now():{DATE_FORMAT}}",
             f"- module {opts.module} (built {env.module_built}), "
             f"repository at {env.repository}",
             f"- thread pool of {THREADS}; "
             f"{total} hello-world requests, {DEFAULT_CONNS} "
             "connections, the worker's RSS every "
             f"{step} requests", "",
             "| requests | worker RSS (KiB) |", "|---:|---:|"]
    ok = None
    try:
        config_wsgi_threads(server, env)
        wait_ready(server)
        workers = worker_pids(server)
        if len(workers) != 1:
            raise StartError(f"expected one worker, found {workers}")
        worker = workers[0]
        lines.append(f"| 0 | {rss_kib(worker)} |")
        samples = []
        done = 0
        next_sample = step
        hello = WORKLOADS[0]
        # 1 s slices of wrk (it can't stop after a number of requests),
        # the RSS each time the count passes a multiple of step
        while done < total:
            run = wrk(server, hello, 1, env)
            if run.errors:
                raise RuntimeError(f"{run.errors} failed requests")
            done += run.requests
            if done < next_sample and done < total:
                continue
            next_sample = (done // step + 1) * step
            rss = rss_kib(worker)
            if rss is None:
                raise RuntimeError("the worker is gone")
            samples.append(rss)
            lines.append(f"| {done} | {rss} |")
            log(f"  {done} requests: RSS {rss} KiB")
        first, last = samples[0], samples[-1]
        growth = (last - first) / first
        ok = growth <= 0.10
        lines += ["", f"First sample {first} KiB, last {last} KiB: "
                  f"{growth * 100:+.1f}%, "
                  f"**{'PASS' if ok else 'FAIL'}** (within 10%)."]
    except (StartError, OSError, RuntimeError) as e:
        lines += ["", f"n/a ({md(e)})"]
    finally:
        server.stop()
        problems = log_problems(server)
    if problems:
        lines += ["", "Error log:"]
        for label, name, count, sample in problems:
            lines += [f"- {label} {name}: {count} line(s)"] + [
                f"  - `{s.strip()[:300]}`" for s in sample]
    return "\n".join(lines) + "\n", ok


# -------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Benchmarks of nginx mod_wsgi (see bench/README.md).")
    p.add_argument("--runs", type=int, default=3,
                   help="measured runs per cell, median reported "
                        "(default 3)")
    p.add_argument("--duration", type=int, default=5,
                   help="seconds per run (default 5)")
    p.add_argument("--warmup", type=int, default=1,
                   help="seconds of warm-up per cell (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="one 2 s run per cell: a smoke test")
    p.add_argument("--only", type=lambda s: [x for x in s.split(",") if x],
                   help="comma-separated configs and/or workloads: "
                        + ", ".join(CONFIG_KEYS + WORKLOAD_KEYS))
    p.add_argument("--module", type=Path, default=MODULE_SO,
                   help="the module to benchmark (default "
                        "build/ngx_http_wsgi_module.so)")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory (configs, logs)")
    p.add_argument("--memory", action="store_true",
                   help="run the memory check instead of the benchmarks")
    p.add_argument("--memory-requests", type=int, default=1000000,
                   help="requests of the memory check (default 1000000)")
    p.add_argument("--output", type=Path,
                   help="report file (default bench/results/latest.md, "
                        "or memory.md)")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.runs, opts.duration, opts.warmup = 1, 2, 1
    for name in opts.only or ():
        if name not in CONFIG_KEYS + WORKLOAD_KEYS:
            p.error(f"--only: unknown name {name!r}; known: "
                    + ", ".join(CONFIG_KEYS + WORKLOAD_KEYS))
    if opts.runs < 1 or opts.duration < 1 or opts.warmup < 1:
        p.error("--runs, --duration and --warmup must be at least 1")
    if opts.memory_requests < 10:
        p.error("--memory-requests must be at least 10")
    return opts


def preflight(opts):
    missing = [b for b in (NGINX, WRK, TASKSET) if not os.access(b, os.X_OK)]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: run tools/deps.sh bench")
    if not opts.module.is_file():
        sys.exit(f"{opts.module} not found: run make")
    if len(os.sched_getaffinity(0)) < 2 or os.cpu_count() < 2:
        sys.exit("needs two CPUs: servers on CPU 0, wrk on CPU 1")


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    preflight(opts)
    # also when started in the background, where SIGINT comes ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_sigterm)
    RESULTS_DIR.mkdir(exist_ok=True)
    env = Env(opts.module, keep=opts.keep)
    try:
        env.setup()
        if opts.memory:
            text, ok = memory_check(env, opts)
            out = opts.output or RESULTS_DIR / "memory.md"
        else:
            report = Report(opts, env, started=now(),
                            load_before=os.getloadavg())
            t0 = time.monotonic()
            report.handoff_us, report.handoff_na = handoff_floor(env)
            for config in CONFIGS:
                if wanted(opts, config.key, CONFIG_KEYS):
                    run_config(config, env, opts, report)
            if all(wanted(opts, k, CONFIG_KEYS)
                   for k in ("nginx", "inline", "threads")) and all(
                    wanted(opts, w, WORKLOAD_KEYS)
                    for w in ("hello", "body64k")):
                log("== nginx, inline and thread pool taking turns")
                bench_interleaved(report, opts, env)
            elif wanted(opts, "subinterp", WORKLOAD_KEYS) and all(
                    wanted(opts, k, CONFIG_KEYS) for k in ("inline",
                                                           "threads")):
                log("== main interpreter and sub-interpreter taking turns")
                bench_interleaved(report, opts, env, SUBINTERP_TURNS)
            report.elapsed = time.monotonic() - t0
            report.load_after = os.getloadavg()
            text = render(report)
            out = opts.output or RESULTS_DIR / "latest.md"
        out.write_text(text)
        print(text)
        log(f"written to {out}")
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        Load.kill_all()
        env.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
