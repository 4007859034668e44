#!/usr/bin/env python3
"""Fan-out / fan-in through memcoord: an integrator posts tasks, three
worker processes claim them (a compare-and-swap on each task's owner key,
so no task is done twice), each reports its results, and the integrator
waits for all three reports with a barrier and merges them.

    make run
    python3 examples/fanout.py    # or MEMCOORD_ENDPOINTS=... python3 ...
"""

import json
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "client", "python"))
import memcoord  # noqa: E402

NS = "examples"
WORKERS = 3
TASKS = 12


def worker(name, run):
    base = "fanout/%s/" % run
    done = []
    with memcoord.Client(namespace=NS, timeout=10) as mc:
        tasks = mc.receive(base + "tasks", timeout=60).json()
        start = int(name.rsplit("-", 1)[1]) * len(tasks) // WORKERS
        for t in tasks[start:] + tasks[:start]:  # each starts elsewhere
            try:  # claim: only the first worker's put of the owner lands
                mc.put(base + "owner/%d" % t, name, expect_version=0)
            except memcoord.ConflictError:
                continue
            time.sleep(0.02)  # the work itself
            done.append({"task": t, "result": t * t})
        mc.handoff(base + "report/" + name, json.dumps(done), tier="mid")


def main():
    run = uuid.uuid4().hex[:8]
    base = "fanout/%s/" % run
    names = ["worker-%d" % i for i in range(WORKERS)]
    t0 = time.monotonic()
    procs = [subprocess.Popen([sys.executable, __file__, n, run])
             for n in names]
    with memcoord.Client(namespace=NS, timeout=10) as mc:
        mc.put(base + "tasks", json.dumps(list(range(TASKS))))
        reports = mc.barrier([base + "report/" + n for n in names], timeout=60)
        for p in procs:
            if p.wait(timeout=60) != 0:
                sys.exit("a worker failed (exit %d)" % p.returncode)
        merged = sorted((d for r in reports.values() for d in r.json()),
                        key=lambda d: d["task"])
        if [d["task"] for d in merged] != list(range(TASKS)):
            sys.exit("tasks lost or done twice: %s" % merged)
        owners = {r.key.rsplit("/", 1)[1]: r.text
                  for r in mc.list(base + "owner/")}
        print("fan-out %s: %d tasks over %d workers in %.0f ms" % (
            run, TASKS, WORKERS, 1000 * (time.monotonic() - t0)))
        for n in names:
            mine = [t for t, o in owners.items() if o == n]
            print("  %s did %d: %s" % (n, len(mine), " ".join(sorted(mine, key=int))))
        print("sum of squares:", sum(d["result"] for d in merged))


if __name__ == "__main__":
    if len(sys.argv) == 3:
        worker(sys.argv[1], sys.argv[2])
    else:
        main()
