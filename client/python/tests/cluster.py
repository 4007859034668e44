"""Start and stop real memcoord nodes on loopback for the Python tests and
examples, the way tests/lib/harness.c does for the C ones: each node with
its own ports and data folder, stopped by PID. Ports are picked under the
same lock file and registry as the C harness, so suites running at once
never share a port."""

import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import memcoord

PORTS_LOCK_PATH = "/tmp/memcoord-harness-ports.lock"
# "PID LO HI" lines: ranges held by live test processes (tests/lib/harness.c)
PORTS_REGISTRY_PATH = "/tmp/memcoord-harness-ports.reg"
RAFT_PORT_LO, RAFT_PORT_HI = 20000, 32000
SHARDS = 8
READY_S = 20.0


def _free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return s.getsockname()[1]
        except OSError:
            return None


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except PermissionError:
        return True
    except OSError:
        return False


def _registry():
    try:
        with open(PORTS_REGISTRY_PATH) as f:
            rows = [tuple(map(int, line.split())) for line in f
                    if len(line.split()) == 3]
    except OSError:
        return []
    return [r for r in rows if _alive(r[0])]


def _reserve(lo, hi):
    """Hold [lo, hi) for this process in the registry (under the lock)."""
    rows = _registry() + [(os.getpid(), lo, hi)]
    tmp = "%s.%d" % (PORTS_REGISTRY_PATH, os.getpid())
    with open(tmp, "w") as f:
        f.writelines("%d %d %d\n" % r for r in rows)
    os.rename(tmp, PORTS_REGISTRY_PATH)


def _taken(lo, hi):
    return any(lo < h and l < hi for _, l, h in _registry())


def _client_port():
    for _ in range(200):
        port = _free(0)
        if port and not _taken(port, port + 1):
            _reserve(port, port + 1)
            return port
    raise RuntimeError("no free client port")


def _raft_base(count):
    for _ in range(200):
        base = random.randrange(RAFT_PORT_LO, RAFT_PORT_HI - count)
        if not _taken(base, base + count) and \
                all(_free(base + i) for i in range(count)):
            _reserve(base, base + count)
            return base
    raise RuntimeError("no free raft ports")


class Cluster:
    """``Cluster(n)``: n nodes, ids 1..n, 8 shards, election 300 ms.
    ``endpoints`` is the comma-separated list of their URLs. Use as a
    context manager, or call ``stop()``."""

    def __init__(self, n=3, extra=()):
        self.bin = os.environ.get("MEMCOORD_BIN", os.path.join(
            os.path.dirname(__file__), "..", "..", "..", "build", "memcoord"))
        root = os.environ.get("MEMCOORD_TEST_DIR", "/tmp/memcoord-test")
        os.makedirs(root, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="py-", dir=root)
        self.procs = {}
        lock = open(PORTS_LOCK_PATH, "a+")
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            self.urls, members = {}, []
            for i in range(1, n + 1):
                port = _client_port()
                raft = _raft_base(SHARDS + 1)
                self.urls[i] = "tcp://127.0.0.1:%d" % port
                members.append("%d=%s@127.0.0.1:%d" % (i, self.urls[i], raft))
            self.args = {}
            for i in range(1, n + 1):
                data = os.path.join(self.dir, "node-%d" % i)
                self.args[i] = [self.bin, "--data", data, "--node-id", str(i),
                                "--initial-cluster", ",".join(members),
                                "--election-ms", "300", "--heartbeat-ms",
                                "30", "--log-level", "warn", *extra]
                self.start(i)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
        self.endpoints = ",".join(self.urls[i] for i in sorted(self.urls))

    def start(self, i):
        log = open(os.path.join(self.dir, "node-%d.log" % i), "ab")
        self.procs[i] = subprocess.Popen(self.args[i], stdout=log,
                                         stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        log.close()

    def kill(self, i, sig=signal.SIGKILL):
        p = self.procs.pop(i, None)
        if p is not None:
            p.send_signal(sig)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def wait_ready(self, timeout=READY_S):
        """Until every running node says every shard it hosts has a leader."""
        deadline = time.monotonic() + timeout
        for i in sorted(self.procs):
            with memcoord.Client(self.urls[i], timeout=0.5) as c:
                while True:
                    if self.procs[i].poll() is not None:
                        raise RuntimeError("node %d exited: see %s" %
                                           (i, self.dir))
                    try:
                        st = c.status()
                        if st["shards"] and all(s["leader"]
                                                for s in st["shards"]):
                            break
                    except memcoord.MemcoordError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError("node %d not ready" % i)
                    time.sleep(0.05)

    def stop(self):
        for i in list(self.procs):
            self.kill(i, signal.SIGTERM)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
