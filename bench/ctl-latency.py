#!/usr/bin/env python3
"""Latency of memcoordctl calls, one at a time, process start included.

    bench/ctl-latency.py [--endpoints URL] [--n 300] [--ctl build/memcoordctl]

Prints p50/p90/p99 of put and get of a 256-byte value. Standard library only.
"""
import argparse
import subprocess
import time


def measure(cmd_for, n):
    lat = []
    for i in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd_for(i), stdout=subprocess.DEVNULL, check=True)
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    return lat[n // 2], lat[n * 90 // 100], lat[n * 99 // 100]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", default="tcp://127.0.0.1:7400")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--ctl", default="build/memcoordctl")
    a = ap.parse_args()
    base = [a.ctl, "--endpoints", a.endpoints, "-n", "bench"]
    value = "v" * 256
    for name, cmd in (
        ("put", lambda i: base + ["put", "ctl/k%d" % (i % 50), value]),
        ("get", lambda i: base + ["get", "ctl/k%d" % (i % 50)]),
    ):
        p50, p90, p99 = measure(cmd, a.n)
        print("memcoordctl %s n=%d: p50 %.2f ms  p90 %.2f ms  p99 %.2f ms"
              % (name, a.n, p50, p90, p99))


if __name__ == "__main__":
    main()
