#!/usr/bin/env python3
"""Three agent processes hand work down a chain through memcoord:
researcher -> coder -> tester. Each waits for its input with a server-side
wait (no polling), does its part, and hands its output to the next.

    make run                      # a local cluster on 127.0.0.1:7400-7402
    python3 examples/chain.py     # or MEMCOORD_ENDPOINTS=... python3 ...

The parent starts the three agents (tester first, to show that order does
not matter), waits for the tester's report and prints the chain."""

import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "client", "python"))
import memcoord  # noqa: E402

NS = "examples"


def agent(role, run):
    base = "chain/%s/" % run
    with memcoord.Client(namespace=NS, timeout=10) as mc:
        if role == "researcher":
            notes = "sources: RFC 9000, raft paper; approach: CAS on versions"
            mc.handoff(base + "research", notes, tier="mid")
        elif role == "coder":
            notes = mc.receive(base + "research", timeout=60).text
            code = "def solve(): pass  # built on: " + notes.split(";")[1]
            mc.handoff(base + "code", code, tier="mid")
        elif role == "tester":
            code = mc.receive(base + "code", timeout=60)
            report = "tested %d bytes of code (version %d): 3 passed" % (
                len(code.value), code.version)
            mc.handoff(base + "report", report, tier="long")
        mc.put(base + "agents/" + role, "done pid %d" % os.getpid())


def main():
    run = uuid.uuid4().hex[:8]
    t0 = time.monotonic()
    procs = [subprocess.Popen([sys.executable, __file__, role, run])
             for role in ("tester", "coder", "researcher")]
    with memcoord.Client(namespace=NS, timeout=10) as mc:
        report = mc.receive("chain/%s/report" % run, timeout=60)
        for p in procs:
            if p.wait(timeout=60) != 0:
                sys.exit("an agent failed (exit %d)" % p.returncode)
        print("chain %s done in %.0f ms" % (run, 1000 * (time.monotonic() - t0)))
        for r in mc.list("chain/%s/" % run):
            print("  %-40s v%d  %s" % (r.key, r.version, r.text))
        print("report:", report.text)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        agent(sys.argv[1], sys.argv[2])
    else:
        main()
