"""A/B of two builds of the module in one session: what a change costs.

    /usr/bin/python3 bench/ab.py A.so B.so [--configs inline,threads]
                     [--only hello,echo,...] [--rounds 5] [--duration 5]
                     [--static-load] [--hog] [--label NAME]

Both builds run side by side, with the same configuration and
applications as bench/run.py (servers pinned to CPU 0, wrk to CPU 1), and
take turns: each round measures A and B once on every workload, in an
order that alternates between rounds, so that a drift of the machine's
speed lands on both.  The report, to stdout, has per cell the medians of
A and B and the median of the rounds' B/A ratios; a ratio above 1 means
B costs more CPU per request (or, for req/s, serves more).

--hog runs a process that computes on the server's CPU during the
measured runs: the server then shares its CPU, as on a busy machine.
The "cpu" workload, ~1 ms of Python per request at 8 connections, is
for what the pool does with steps that compute.
"""

import argparse
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("a", help="module A, the reference")
    p.add_argument("b", help="module B, the change")
    p.add_argument("--configs", default="inline,threads",
                   help="of bench/run.py's module configs (default "
                        "inline,threads)")
    p.add_argument("--only", default="hello,body64k,stream,echo,sleep",
                   help="workloads (default hello,body64k,stream,echo,"
                        "sleep)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--static-load", action="store_true",
                   help="also the static file p99 next to the CPU-bound "
                        "and the sleeping app (thread pool configs)")
    p.add_argument("--hog", action="store_true",
                   help="a process computing on the server's CPU too")
    p.add_argument("--label", default="B",
                   help="what B is, for the report")
    opts = p.parse_args(argv)
    opts.runs = 1
    return opts


def ratios(a, b):
    return [y / x for x, y in zip(a, b) if x and y]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def cell(name, a, b, digits=1):
    r = ratios(a, b)
    return (f"| {name} | {run.fmt_num(med(a), digits)} | "
            f"{run.fmt_num(med(b), digits)} | "
            + (f"{med(r):.3f} ({' '.join(f'{x:.2f}' for x in r)})"
               if r else "-") + " |")


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    configs = {c.key: c for c in run.CONFIGS}
    workloads = {w.key: w for w in run.WORKLOADS}
    workloads["cpu"] = run.Workload("cpu", "CPU-bound app", "/cpu",
                                    conns=run.CPU_LOAD_CONNS,
                                    check=run.expect_body(b"done\n"))
    ckeys = opts.configs.split(",")
    wkeys = opts.only.split(",")
    envs = {"A": run.Env(Path(opts.a)), "B": run.Env(Path(opts.b))}
    servers = {}
    hog = None
    lines = [f"A: {opts.a}", f"B: {opts.b} ({opts.label})",
             f"{opts.rounds} rounds of {opts.duration:g} s, A and B taking "
             "turns; load average before "
             + " ".join(f"{x:.2f}" for x in run.os.getloadavg()), ""]
    t0 = time.monotonic()
    try:
        for env in envs.values():
            env.setup()
        if opts.hog:
            hog = run.subprocess.Popen(run.pinned(
                run.SERVER_CPU, [run.PYTHON, "-c", "while True: pass"]))
            lines.insert(3, "a process computing on the server's CPU "
                            "throughout")
        for ckey in ckeys:
            for side, env in envs.items():
                server = run.Server(f"{ckey}-{side}", run.free_port())
                servers[ckey, side] = server
                configs[ckey].start(server, env)
                run.wait_ready(server)
        lines += ["| config / workload | A | B | B/A, median (rounds) |",
                  "|---|---:|---:|---|"]
        for ckey in ckeys:
            for wkey in wkeys:
                w = workloads[wkey]
                res = {s: {"cpu": [], "rps": [], "p99": []} for s in envs}
                for side in envs:
                    problem = run.check_response(servers[ckey, side], w)
                    if problem:
                        raise RuntimeError(f"{ckey}/{wkey} {side}: "
                                           f"{problem}")
                    run.wrk(servers[ckey, side], w, opts.warmup, envs[side])
                for i in range(opts.rounds):
                    order = ("A", "B") if i % 2 == 0 else ("B", "A")
                    for side in order:
                        r = run.measure(servers[ckey, side], w,
                                        opts.duration, envs[side])
                        if r.errors:
                            raise RuntimeError(f"{ckey}/{wkey} {side}: "
                                               f"{r.errors} errors")
                        res[side]["cpu"].append(r.cpu_us)
                        res[side]["rps"].append(r.rps)
                        res[side]["p99"].append(r.p99_us)
                    run.log(f"  {ckey}/{wkey} round {i + 1}: A "
                            f"{run.fmt_num(res['A']['cpu'][-1])} B "
                            f"{run.fmt_num(res['B']['cpu'][-1])} us/req")
                a, b = res["A"], res["B"]
                lines.append(cell(f"{ckey} {wkey}: CPU us/req",
                                  a["cpu"], b["cpu"], 2))
                lines.append(cell(f"{ckey} {wkey}: req/s", a["rps"],
                                  b["rps"], 0))
                lines.append(cell(f"{ckey} {wkey}: p99 us", a["p99"],
                                  b["p99"], 0))
        if opts.static_load:
            for ckey in ckeys:
                if ckey == "inline":
                    continue
                res = {s: {"idle": [], "cpu": [], "sleep": []}
                       for s in envs}
                for i in range(opts.rounds):
                    order = ("A", "B") if i % 2 == 0 else ("B", "A")
                    for side in order:
                        lat = run.bench_static_latency(
                            servers[ckey, side], opts, envs[side])
                        if lat.na:
                            raise RuntimeError(f"{ckey} {side}: {lat.na}")
                        res[side]["idle"].append(lat.idle_p99)
                        res[side]["cpu"].append(lat.loads["cpu"][0])
                        res[side]["sleep"].append(lat.loads["sleep"][0])
                for k in ("idle", "cpu", "sleep"):
                    lines.append(cell(f"{ckey} static p99 us, {k}",
                                      res["A"][k], res["B"][k], 0))
        for server in servers.values():
            server.check_running()
    except KeyboardInterrupt:
        run.log("interrupted; cleaning up")
        return 130
    finally:
        run.Load.kill_all()
        if hog:
            hog.kill()
            hog.wait()
        for server in servers.values():
            server.stop()
            for label, name, count, first in run.log_problems(server):
                lines.append(f"- {server.name} {label} {name}: {count} "
                             f"problem lines, first: {first[0]}")
        for env in envs.values():
            env.cleanup()
    lines.append("")
    lines.append(f"took {(time.monotonic() - t0) / 60:.1f} min")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
