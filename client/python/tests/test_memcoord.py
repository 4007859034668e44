"""The Python binding against a real 3-node cluster: the key-value calls,
Pythonic errors, and the recipes (update-with-retry under contention, a
checkpointed workflow killed mid-way)."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

import memcoord
from cluster import Cluster


def setUpModule():
    global CLUSTER
    CLUSTER = Cluster(3)


def tearDownModule():
    CLUSTER.stop()


class KeyValue(unittest.TestCase):
    def setUp(self):
        self.mc = memcoord.Client(CLUSTER.endpoints, namespace="py-kv")

    def tearDown(self):
        self.mc.close()

    def test_put_get_delete(self):
        w = self.mc.put("swarm/researcher/status", "draft ready", tier="long")
        self.assertEqual(w.version, 1)
        rec = self.mc.get("swarm/researcher/status")
        self.assertEqual(rec.text, "draft ready")
        self.assertEqual(rec.value, b"draft ready")
        self.assertEqual((rec.version, rec.tier), (1, "long"))
        self.assertIsNone(rec.expires_at)
        self.assertEqual(rec.mod_rev, w.mod_rev)
        self.mc.delete("swarm/researcher/status", expect_version=1)
        self.assertIsNone(self.mc.get_or_none("swarm/researcher/status"))

    def test_bytes_and_unicode_round_trip(self):
        value = bytes(range(256))
        self.mc.put("bin/all-bytes", value)
        self.assertEqual(self.mc.get("bin/all-bytes").value, value)
        self.mc.put("unicode/ключ/🙂", "значение")
        self.assertEqual(self.mc.get("unicode/ключ/🙂").text, "значение")

    def test_ttl_and_short_tier(self):
        self.mc.put("scratch/x", "y", tier="short", ttl=60)
        rec = self.mc.get("scratch/x")
        self.assertEqual(rec.tier, "short")
        self.assertAlmostEqual(rec.expires_at, time.time() + 60, delta=10)

    def test_cas_conflict_says_where_the_key_is(self):
        self.mc.put("cas/k", "v1", expect_version=0)
        with self.assertRaises(memcoord.ConflictError) as e:
            self.mc.put("cas/k", "v2", expect_version=0)
        self.assertEqual(e.exception.version, 1)
        self.assertEqual(e.exception.code, "CONFLICT")
        self.mc.put("cas/k", "v2", expect_version=1)
        with self.assertRaises(memcoord.ConflictError) as e:
            self.mc.delete("cas/k", expect_version=1)
        self.assertEqual(e.exception.version, 2)

    def test_errors_are_typed(self):
        with self.assertRaises(memcoord.NotFoundError):
            self.mc.get("no/such/key")
        with self.assertRaises(KeyError):  # NotFoundError is a KeyError
            self.mc.get("no/such/key")
        with self.assertRaises(memcoord.NotFoundError):
            self.mc.delete("no/such/key")
        with self.assertRaises(memcoord.InvalidArgumentError):
            self.mc.put("", "empty key")
        with self.assertRaises(memcoord.InvalidArgumentError):
            self.mc.put("k", "v", ns="Bad Namespace")
        with self.assertRaises(memcoord.TooLargeError):
            self.mc.put("big", b"x" * ((1 << 20) + 1))
        with self.assertRaises(TypeError):
            self.mc.put("k", 42)

    def test_list_pages_across_shards(self):
        keys = ["list/%03d" % i for i in range(250)]
        for k in keys:
            self.mc.put(k, k)
        got = list(self.mc.list("list/", page_size=37))
        self.assertEqual([r.key for r in got], keys)
        self.assertEqual([r.text for r in got], keys)
        self.assertEqual(self.mc.keys("list/", limit=10), keys[:10])
        self.assertIsNone(next(self.mc.list("list/", keys_only=True)).value)

    def test_list_by_pattern(self):
        for k in ["pat/a/status", "pat/b/status", "pat/b/notes", "pat/a_b"]:
            self.mc.put(k, "v")
        self.assertEqual(self.mc.keys(pattern="pat/%/status"),
                         ["pat/a/status", "pat/b/status"])
        self.assertEqual(self.mc.keys(pattern="pat/a\\_%"), ["pat/a_b"])
        self.assertEqual(self.mc.keys(pattern="pat/_/%", page_size=1),
                         ["pat/a/status", "pat/b/notes", "pat/b/status"])
        with self.assertRaises(memcoord.InvalidArgumentError):
            self.mc.keys(pattern="pat/%\\")

    def test_status_names_the_cluster(self):
        st = self.mc.status()
        self.assertEqual(st["shard_count"], 8)
        self.assertEqual(len(st["members"]), 3)
        self.assertTrue(st["meta"]["leader"])

    def test_closed_client_refuses(self):
        c = memcoord.Client(CLUSTER.endpoints)
        c.close()
        with self.assertRaises(memcoord.InvalidArgumentError):
            c.get("k")


class Coordination(unittest.TestCase):
    def setUp(self):
        self.mc = memcoord.Client(CLUSTER.endpoints, namespace="py-coord")
        # A cleanup, not tearDown: cleanups run after tearDown, last added
        # first, so the writers of later() are joined before the close.
        self.addCleanup(self.mc.close)

    def later(self, seconds, fn, *args, **kw):
        t = threading.Timer(seconds, fn, args, kw)
        t.start()
        self.addCleanup(t.join)

    def test_wait_wakes_at_the_write(self):
        lat = []
        for i in range(10):
            key = "wake/%d" % i
            done = []
            self.later(0.05, lambda k=key: done.append(
                (time.monotonic(), self.mc.put(k, "here"))))
            rec = self.mc.wait(key, timeout=5)
            woke = time.monotonic()
            self.assertEqual(rec.text, "here")
            if done:
                lat.append(woke - done[0][0])
        print("\nwait: woke %d of 10 times after the writer's ack, the "
              "latest %.1f ms after it" % (len(lat), 1000 * max(lat or [0])),
              file=sys.stderr)

    def test_wait_times_out(self):
        t0 = time.monotonic()
        with self.assertRaises(memcoord.TimedOutError):
            self.mc.wait("never/written", timeout=0.3)
        self.assertLess(time.monotonic() - t0, 3)
        with self.assertRaises(TimeoutError):  # a builtin TimeoutError too
            self.mc.wait("never/written", timeout=0.1)

    def test_gate_and_version(self):
        self.mc.put("gate/review", "pending")
        self.later(0.1, self.mc.put, "gate/review", "changes requested")
        self.later(0.3, self.mc.put, "gate/review", "approved")
        rec = self.mc.gate("gate/review", "approved", timeout=5)
        self.assertEqual((rec.text, rec.version), ("approved", 3))
        self.assertEqual(self.mc.wait("gate/review", version=2).version, 3)

    def test_handoff_and_barrier(self):
        self.later(0.1, self.mc.handoff, "handoff/step1", "research done")
        self.assertEqual(self.mc.receive("handoff/step1", timeout=5).text,
                         "research done")
        keys = ["fanin/worker-%d" % i for i in range(3)]
        for i, k in enumerate(keys):
            self.later(0.05 * (3 - i), self.mc.put, k, "part %d" % i)
        got = self.mc.barrier(keys, timeout=5)
        self.assertEqual([got[k].text for k in keys],
                         ["part 0", "part 1", "part 2"])
        with self.assertRaises(memcoord.TimedOutError):
            self.mc.barrier(keys + ["fanin/missing"], timeout=0.3)

    def test_watch_in_order_and_resume(self):
        with self.mc.watch("watched/", prefix=True) as w:
            self.mc.put("watched/a", "1")
            self.mc.put("watched/a", "2")
            self.mc.delete("watched/a")
            events = []
            while len(events) < 3:
                got = w.next(timeout=5)
                self.assertTrue(got, "no event within 5 s")
                events += got
            self.assertEqual([(e.type, e.key, e.version) for e in events],
                             [("put", "watched/a", 1), ("put", "watched/a", 2),
                              ("delete", "watched/a", 2)])
            self.assertEqual(events[1].value, b"2")
            self.assertEqual([e.revision for e in events],
                             sorted(e.revision for e in events))
            token = w.token
        # Writes while nobody watches; a new watch from the token sees
        # exactly those, once.
        self.mc.put("watched/b", "x")
        self.mc.put("watched/c", "y")
        with self.mc.watch("watched/", prefix=True,
                           resume_token=token) as w:
            seen = []
            while len(seen) < 2:
                got = w.next(timeout=5)
                self.assertTrue(got, "no event within 5 s")
                seen += got
            self.assertEqual(sorted(e.key for e in seen),
                             ["watched/b", "watched/c"])
            self.assertEqual(w.next(timeout=0.2), [])

    def test_txn_then_else_and_one_shard(self):
        mc = self.mc
        mc.put("{job7}/state", "ready")
        r = mc.txn([memcoord.value_is("{job7}/state", "==", "ready"),
                    memcoord.missing("{job7}/owner")],
                   then=[memcoord.put_op("{job7}/owner", "agent-1"),
                         memcoord.put_op("{job7}/state", "taken"),
                         memcoord.get_op("{job7}/state")],
                   otherwise=[memcoord.get_op("{job7}/owner")])
        self.assertTrue(r.succeeded)
        self.assertEqual([x["type"] for x in r.results], ["put", "put", "get"])
        self.assertEqual(r.results[2]["record"].text, "taken")
        r = mc.txn([memcoord.missing("{job7}/owner")],
                   then=[memcoord.put_op("{job7}/owner", "agent-2")],
                   otherwise=[memcoord.get_op("{job7}/owner")])
        self.assertFalse(r.succeeded)
        self.assertEqual(r.results[0]["record"].text, "agent-1")
        with self.assertRaises(memcoord.InvalidArgumentError) as e:
            mc.txn([], then=[memcoord.put_op("a", "1"),
                             memcoord.put_op("b", "2")])
        self.assertIn("{tag}", str(e.exception))


class Recipes(unittest.TestCase):
    def test_update_with_retry_loses_no_increment(self):
        """8 concurrent updaters, 500 increments each, on one counter."""
        workers, each = 8, 500
        mc = memcoord.Client(CLUSTER.endpoints, namespace="py-recipes",
                             timeout=10)
        errors = []

        def work():
            try:
                for _ in range(each):
                    mc.update("counter", lambda v: str(int(v or 0) + 1))
            except Exception as e:  # reported below, not lost in a thread
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(workers)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        self.assertEqual(errors, [])
        rec = mc.get("counter")
        self.assertEqual(int(rec.text), workers * each)
        self.assertEqual(rec.version, workers * each)
        print("\nupdate-with-retry: %d increments by %d threads in %.1f s" %
              (workers * each, workers, elapsed), file=sys.stderr)
        mc.close()

    def test_checkpointed_workflow_resumes_after_kill(self):
        """A worker killed in step 3 of 5: the next worker runs steps 3-5
        only, and the results are those of one clean run."""
        log = tempfile.NamedTemporaryFile("r", delete=False)
        worker = textwrap.dedent("""
            import os, signal, sys, memcoord
            log, kill_at = sys.argv[1], int(sys.argv[2])
            def step(n):
                def run(results):
                    with open(log, "a") as f:
                        f.write("%d\\n" % n)
                    if n == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return (results[-1] if results else 0) + n
                return run
            mc = memcoord.Client(os.environ["EPS"], namespace="py-recipes")
            print(mc.workflow("wf-kill").run([step(n) for n in range(1, 6)]))
        """)
        env = dict(os.environ, EPS=CLUSTER.endpoints)

        def run(kill_at):
            return subprocess.run([sys.executable, "-c", worker, log.name,
                                   str(kill_at)], env=env,
                                  capture_output=True, text=True, timeout=60)

        first = run(3)
        self.assertEqual(first.returncode, -signal.SIGKILL, first.stderr)
        second = run(0)
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertEqual(json.loads(second.stdout), [1, 3, 6, 10, 15])
        # Steps 1 and 2 ran once; step 3 ran twice (killed before its
        # checkpoint); 4 and 5 once.
        self.assertEqual(log.read().split(), ["1", "2", "3", "3", "4", "5"])
        with memcoord.Client(CLUSTER.endpoints, namespace="py-recipes") as mc:
            done, results, _ = mc.workflow("wf-kill").state()
        self.assertEqual((done, results), (5, [1, 3, 6, 10, 15]))
        os.unlink(log.name)


if __name__ == "__main__":
    unittest.main()
