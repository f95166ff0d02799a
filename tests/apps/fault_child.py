"""Child processes started by the application.

/run       subprocess.run(["sh", "-c", "exit 3"]) ?n= times: its return codes
/check     subprocess.check_call(["/bin/false"]): "raised" or "no error"
/popen     Popen(["sh", "-c", "exit 5"]), wait until it ended, then wait()
/waitpid   os.fork(), the child os._exit(7)s, then os.waitpid(): its status
/exit2     the same with os._exit(2), the status nginx's master takes as fatal
/signal    a child killed by SIGKILL, then wait(): its return code
/mp        multiprocessing.Process (fork) that sys.exit(4)s: its exitcode

Each answers JSON {"results": [...]}, one result per round (?n=, 1).
"""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from urllib.parse import parse_qs


def ended(pid):
    """Waits until pid is a zombie (ended, not yet waited for)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            # reaped by someone else
            return
        time.sleep(0.005)


def one(what):
    if what == "run":
        return subprocess.run(["sh", "-c", "exit 3"]).returncode

    if what == "check":
        try:
            subprocess.check_call(["/bin/false"])
        except subprocess.CalledProcessError as e:
            return "raised %d" % e.returncode
        return "no error"

    if what == "popen":
        p = subprocess.Popen(["sh", "-c", "exit 5"])
        ended(p.pid)
        return p.wait()

    if what in ("waitpid", "exit2"):
        pid = os.fork()
        if pid == 0:
            os._exit(7 if what == "waitpid" else 2)
        ended(pid)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError as e:
            return "ChildProcessError %s" % e
        return os.waitstatus_to_exitcode(status)

    if what == "signal":
        p = subprocess.Popen(["sleep", "10"])
        p.send_signal(signal.SIGKILL)
        ended(p.pid)
        return p.wait()

    if what == "mp":
        p = multiprocessing.get_context("fork").Process(target=sys.exit,
                                                         args=(4,))
        p.start()
        p.join()
        return p.exitcode

    return "unknown"


def application(environ, start_response):
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    n = int(qs.get("n", ["1"])[0])
    what = environ["PATH_INFO"].rstrip("/").rsplit("/", 1)[-1]
    body = json.dumps({"results": [one(what) for _ in range(n)]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
