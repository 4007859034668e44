"""Self-test of checker.py: valid histories pass, mutated ones fail.

Valid histories come from a simulated linearizable register: several
clients invoke get / put / CAS (or read + CAS-append) with overlapping
intervals, each operation takes effect at a random point inside its
interval, and the outputs are what the model says at that point. Some
operations end unknown (info): those took effect or not, at random. Each
mutation then breaks one promise in a way that the real-time order makes
detectable (stale read, lost acknowledged write, duplicated version,
reordered writes, lost appended element), and both layers of the checker,
the fast version-order check and the linearizability search, must flag it
on every seed.

Run: python3 -m unittest discover -s tests/fault -p 'test_*.py'
"""

import json
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402

SEEDS = range(40)


def simulate(rng, key="k", n_procs=3, n_ops=60, info_p=0.08, w="register",
             final_read=True, t0=0):
    """A valid history of one key: a list of event dicts, plus the
    sequence of states (value, version) the register went through."""
    procs = list(range(n_procs))
    clock = {p: t0 + rng.randint(0, 5) for p in procs}
    pending = []
    next_id = [0]
    proc_of = {p: p for p in procs}
    elem = [0]
    for _ in range(n_ops):
        p = rng.choice(procs)
        call = clock[p] + rng.randint(1, 4)
        ret = call + rng.randint(1, 12)
        lin = rng.uniform(call, ret)
        clock[p] = ret
        next_id[0] += 1
        op = {"id": next_id[0], "proc": proc_of[p], "call": call, "ret": ret,
              "lin": lin, "key": key, "w": w}
        r = rng.random()
        if w == "append":
            op["f"] = "read" if r < 0.4 else "append"
            if op["f"] == "append":
                elem[0] += 1
                op["elem"] = "%d.%d" % (p, elem[0])
        elif r < 0.4:
            op["f"] = "get"
        elif r < 0.7:
            op["f"] = "put"
        else:
            op["f"] = "cas"
        if op["f"] in ("put", "cas"):
            op["value"] = "%s:%d" % (key, op["id"])
        if op["f"] != "get" and op["f"] != "read" and rng.random() < info_p:
            op["info"] = True
            op["happens"] = rng.random() < 0.5
            proc_of[p] += 1000  # a new process after an unknown outcome
        pending.append(op)
    # The expected version of a CAS: usually the current one, as a client
    # that just read would send; sometimes a stale one.
    pending.sort(key=lambda o: o["lin"])
    state = (None, 0)
    states = [state]
    for op in pending:
        val, ver = state
        f = op["f"]
        if f in ("get", "read"):
            op["out"] = state
            continue
        if f == "append":
            exp = ver if rng.random() < 0.8 else max(0, ver - 1)
            op["expect"] = exp
            cur = val.split(",") if val else []
            op["value"] = ",".join(cur + [op["elem"]])
        if f == "cas":
            op["expect"] = ver if rng.random() < 0.7 else rng.randint(0, ver + 1)
        if op.get("info") and not op["happens"]:
            continue
        if f == "put" or op.get("expect") == ver:
            state = (op["value"], ver + 1)
            states.append(state)
            op["res"] = ("OK", ver + 1)
        else:
            op["res"] = ("CONFLICT", ver)
    events = []
    for op in pending:
        inv = {"ev": "invoke", "id": op["id"], "proc": op["proc"],
               "t": op["call"], "w": w, "key": key, "f": op["f"]}
        for k in ("value", "expect", "elem"):
            if k in op and op["f"] not in ("get", "read"):
                inv[k] = op[k]
        events.append(inv)
        if op.get("info"):
            if rng.random() < 0.5:
                events.append({"ev": "info", "id": op["id"], "proc": op["proc"],
                               "t": op["ret"], "w": w, "key": key,
                               "f": op["f"], "err": "TIMEOUT"})
            continue
        c = {"ev": "ok", "id": op["id"], "proc": op["proc"], "t": op["ret"],
             "w": w, "key": key, "f": op["f"]}
        if op["f"] in ("get", "read"):
            c["value"], c["version"] = op["out"]
            c["err"] = "OK" if op["out"][1] else "NOT_FOUND"
        else:
            c["err"], c["version"] = op["res"]
        events.append(c)
    end = max(op["ret"] for op in pending) + 10
    if final_read:
        f = "read" if w == "append" else "get"
        events.append({"ev": "invoke", "id": 10**6, "proc": 999, "t": end,
                       "w": w, "key": key, "f": f})
        events.append({"ev": "ok", "id": 10**6, "proc": 999, "t": end + 1,
                       "w": w, "key": key, "f": f, "value": state[0],
                       "version": state[1],
                       "err": "OK" if state[1] else "NOT_FOUND"})
    events.sort(key=lambda e: (e["t"], e["ev"] != "invoke"))
    return events, states


def lines(events):
    return [json.dumps(e) for e in events]


def completions(events):
    return {e["id"]: e for e in events if e["ev"] != "invoke"}


def invokes(events):
    return {e["id"]: e for e in events if e["ev"] == "invoke"}


def ok_writes(events):
    inv = invokes(events)
    return [(inv[c["id"]], c) for c in events
            if c["ev"] == "ok" and c["f"] in ("put", "cas", "append")
            and c["err"] == "OK"]


# ---- mutations: each returns True when it found a place to apply ----

def mutate_stale_read(rng, events, states):
    """A read invoked after a write returned sees the state before it."""
    cs = completions(events)
    inv = invokes(events)
    writes = ok_writes(events)
    reads = [c for c in cs.values() if c["ev"] == "ok"
             and c["f"] in ("get", "read") and c["version"] > 0]
    rng.shuffle(reads)
    for r in reads:
        for wi, wc in writes:
            if wc["t"] < inv[r["id"]]["t"] and wc["version"] == r["version"]:
                prev = states[wc["version"] - 1]
                r["value"], r["version"] = prev
                r["err"] = "OK" if prev[1] else "NOT_FOUND"
                return True
    return False


def mutate_lost_write(rng, events, states):
    """The last acknowledged write vanishes: the final read, after every
    write returned, sees the state before it."""
    fin = [e for e in events if e["id"] == 10**6 and e["ev"] == "ok"][0]
    if fin["version"] == 0:
        return False
    w = [c for _, c in ok_writes(events) if c["version"] == fin["version"]]
    if not w:
        return False  # the last write was an unknown one
    prev = states[fin["version"] - 1]
    fin["value"], fin["version"] = prev
    fin["err"] = "OK" if prev[1] else "NOT_FOUND"
    return True


def mutate_duplicate_version(rng, events, states):
    """Two acknowledged writes report the same version."""
    w = ok_writes(events)
    if len(w) < 2:
        return False
    a, b = sorted(rng.sample(w, 2), key=lambda x: x[1]["version"])
    b[1]["version"] = a[1]["version"]
    return True


def mutate_reordered_writes(rng, events, states):
    """Two writes, one returned before the other was invoked, report each
    other's versions."""
    w = ok_writes(events)
    by_ver = {c["version"]: (i, c) for i, c in w}
    pairs = [(by_ver[v], by_ver[v + 1]) for v in by_ver if v + 1 in by_ver
             and by_ver[v][1]["t"] < by_ver[v + 1][0]["t"]]
    if not pairs:
        return False
    (_, a), (_, b) = rng.choice(pairs)
    a["version"], b["version"] = b["version"], a["version"]
    return True


def mutate_lost_element(rng, events, states):
    """Append: the final read misses the last acknowledged element but
    keeps the version (a write lost inside the list)."""
    fin = [e for e in events if e["id"] == 10**6 and e["ev"] == "ok"][0]
    if not fin["value"] or fin["version"] == 0:
        return False
    w = [c for _, c in ok_writes(events) if c["version"] == fin["version"]]
    if not w:
        return False
    elems = fin["value"].split(",")
    fin["value"] = ",".join(elems[:-1]) or None
    if fin["value"] is None:
        return False
    return True


# ---- the watch: a valid event stream of simulated keys, and mutations ----

WATCH_PROC = 5000


def watch_stream(rng, per_key_states, start=0, reopen_every=7):
    """The events a watch opened at start would receive: every state a key
    went through, in order per key, keys interleaved at random, one shard
    per key, with a close and a resumed open every few events."""
    cursors = {k: 1 for k in per_key_states}
    rev = {k: 100 * i for i, k in enumerate(sorted(per_key_states))}
    t = max(start, 0) + 10**6
    out = [{"ev": "open", "w": "watch", "proc": WATCH_PROC, "t": start,
            "key": "", "resumed": False}]
    n = 0
    while True:
        live = [k for k in per_key_states
                if cursors[k] < len(per_key_states[k])]
        if not live:
            break
        k = rng.choice(live)
        val, ver = per_key_states[k][cursors[k]]
        cursors[k] += 1
        rev[k] += rng.randint(1, 3)
        t += 1
        out.append({"ev": "event", "w": "watch", "proc": WATCH_PROC, "t": t,
                    "key": k, "type": "put", "version": ver, "value": val,
                    "revision": rev[k], "shard": sorted(per_key_states)
                    .index(k), "seq": 0})
        n += 1
        if n % reopen_every == 0:
            out.append({"ev": "close", "w": "watch", "proc": WATCH_PROC,
                        "t": t, "why": "periodic", "err": "OK",
                        "mod_rev": 0})
            out.append({"ev": "open", "w": "watch", "proc": WATCH_PROC,
                        "t": t, "key": "", "resumed": True})
    return out


def watched(seed, n_keys=3):
    """A valid history of n_keys keys with the watch's lines at the end."""
    rng = random.Random(seed)
    ev, states = [], {}
    for k in range(n_keys):
        key = "k%d" % k
        e, st = simulate(rng, key=key, t0=k)
        for x in e:
            x["id"] += k * 10**7
        ev += e
        states[key] = st
    ev.sort(key=lambda e: (e["t"], e["ev"] != "invoke"))
    return ev, watch_stream(rng, states, start=-1)


def acked_values(ev):
    return {c["value"] if "value" in c else i["value"]
            for i, c in ok_writes(ev)}


def watch_events(wl):
    return [i for i, e in enumerate(wl) if e["ev"] == "event"]


def wmut_drop_acked(rng, ev, wl):
    """An acknowledged write's event never comes."""
    acked = acked_values(ev)
    idx = [i for i in watch_events(wl) if wl[i]["value"] in acked]
    if not idx:
        return False
    del wl[rng.choice(idx)]
    return True


def wmut_duplicate(rng, ev, wl):
    """An event comes twice (a resume that went back one event)."""
    i = rng.choice(watch_events(wl))
    wl.insert(i + 1, dict(wl[i]))
    return True


def wmut_swap(rng, ev, wl):
    """Two events of one key come in the wrong order."""
    idx = watch_events(wl)
    pairs = []
    for a in range(len(idx)):
        for b in range(a + 1, len(idx)):
            if wl[idx[b]]["key"] == wl[idx[a]]["key"]:
                pairs.append((idx[a], idx[b]))
                break
    if not pairs:
        return False
    a, b = rng.choice(pairs)
    wl[a], wl[b] = wl[b], wl[a]
    return True


def wmut_invent(rng, ev, wl):
    """An event carries a value no client wrote."""
    i = rng.choice(watch_events(wl))
    wl[i]["value"] = "invented:%d" % rng.randint(0, 10**6)
    return True


WATCH_MUTATIONS = {
    "dropped event of an acknowledged write": (wmut_drop_acked, "missing"),
    "duplicated event": (wmut_duplicate, "repeated"),
    "swapped events of one key": (wmut_swap, "out_of_order"),
    "invented value": (wmut_invent, "illegal"),
}


MUTATIONS = {
    "stale read": mutate_stale_read,
    "lost acknowledged write": mutate_lost_write,
    "duplicated version": mutate_duplicate_version,
    "reordered writes": mutate_reordered_writes,
}


def split_key(events, key="k"):
    ops, _ = checker.load(lines(events))
    return [op for op in ops if op.key == key and op.status != "fail"
            and not (op.status == "info" and not op.is_write())]


class ValidHistories(unittest.TestCase):
    def test_valid_register_histories_pass(self):
        for seed in SEEDS:
            ev, _ = simulate(random.Random(seed))
            out = checker.check_lines(lines(ev), budget_s=30)
            self.assertEqual(out["linearizable_keys"], 1,
                             "seed %d: %s" % (seed, out["results"]))

    def test_valid_append_histories_pass(self):
        for seed in SEEDS:
            ev, _ = simulate(random.Random(seed), w="append")
            out = checker.check_lines(lines(ev), budget_s=30)
            self.assertEqual(out["linearizable_keys"], 1,
                             "seed %d: %s" % (seed, out["results"]))

    def test_many_keys_and_concurrency(self):
        rng = random.Random(7)
        ev = []
        for k in range(8):
            e, _ = simulate(rng, key="k%d" % k, n_procs=6, n_ops=150,
                            info_p=0.15, t0=k)
            for x in e:
                x["id"] += k * 10**7
            ev += e
        ev.sort(key=lambda e: (e["t"], e["ev"] != "invoke"))
        out = checker.check_lines(lines(ev), budget_s=60)
        self.assertEqual(out["keys"], 8)
        self.assertEqual(out["linearizable_keys"], 8, out["results"])

    def test_unknown_write_that_happened_is_accepted(self):
        # An info put whose value a later read sees: it took effect.
        ev = [
            {"ev": "invoke", "id": 1, "t": 0, "key": "k", "f": "put",
             "value": "a"},
            {"ev": "info", "id": 1, "t": 5, "key": "k", "f": "put",
             "err": "TIMEOUT"},
            {"ev": "invoke", "id": 2, "t": 10, "key": "k", "f": "get"},
            {"ev": "ok", "id": 2, "t": 11, "key": "k", "f": "get",
             "value": "a", "version": 1, "err": "OK"},
        ]
        out = checker.check_lines(lines(ev))
        self.assertEqual(out["linearizable_keys"], 1, out["results"])

    def test_unknown_write_that_never_happened_is_accepted(self):
        ev = [
            {"ev": "invoke", "id": 1, "t": 0, "key": "k", "f": "put",
             "value": "a"},
            {"ev": "info", "id": 1, "t": 5, "key": "k", "f": "put",
             "err": "TIMEOUT"},
            {"ev": "invoke", "id": 2, "t": 10, "key": "k", "f": "get"},
            {"ev": "ok", "id": 2, "t": 11, "key": "k", "f": "get",
             "value": None, "version": 0, "err": "NOT_FOUND"},
        ]
        out = checker.check_lines(lines(ev))
        self.assertEqual(out["linearizable_keys"], 1, out["results"])

    def test_failed_write_that_happened_is_flagged(self):
        # fail means "certainly not applied": a read that sees it is wrong.
        ev = [
            {"ev": "invoke", "id": 1, "t": 0, "key": "k", "f": "put",
             "value": "a"},
            {"ev": "fail", "id": 1, "t": 5, "key": "k", "f": "put",
             "err": "UNAVAILABLE"},
            {"ev": "invoke", "id": 2, "t": 10, "key": "k", "f": "get"},
            {"ev": "ok", "id": 2, "t": 11, "key": "k", "f": "get",
             "value": "a", "version": 1, "err": "OK"},
        ]
        out = checker.check_lines(lines(ev))
        self.assertEqual(out["illegal_keys"], 1, out["results"])

    def test_delete_model(self):
        ev = []
        t = 0
        seq = [("put", {"value": "a"}, {"err": "OK", "version": 1}),
               ("del", {"expect": 1}, {"err": "OK", "version": 0}),
               ("get", {}, {"err": "NOT_FOUND", "value": None,
                            "version": 0}),
               ("put", {"value": "b"}, {"err": "OK", "version": 1}),
               ("del", {"expect": 3}, {"err": "CONFLICT", "version": 1})]
        for i, (f, a, r) in enumerate(seq):
            ev.append(dict({"ev": "invoke", "id": i, "t": t, "key": "k",
                            "f": f}, **a))
            ev.append(dict({"ev": "ok", "id": i, "t": t + 1, "key": "k",
                            "f": f}, **r))
            t += 2
        out = checker.check_lines(lines(ev))
        self.assertEqual(out["linearizable_keys"], 1, out["results"])
        ev[5]["version"] = 2  # a read after the delete sees version 2
        ev[5]["value"] = "a"
        ev[5]["err"] = "OK"
        out = checker.check_lines(lines(ev))
        self.assertEqual(out["illegal_keys"], 1, out["results"])

    def test_search_budget_gives_unknown_which_fails(self):
        # A search that runs out of time is "unknown", and the exit status
        # counts it as a failure, never as a pass.
        ev, _ = simulate(random.Random(3))
        real = checker.wgl

        def out_of_time(ops, deadline):
            raise checker.Budget()
        checker.wgl = out_of_time
        try:
            out = checker.check_lines(lines(ev))
            self.assertEqual(out["unknown_keys"], 1)
            self.assertEqual(out["linearizable_keys"], 0)
            import tempfile
            with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as f:
                f.write("\n".join(lines(ev)))
                f.flush()
                self.assertEqual(checker.main([f.name]), 1)
        finally:
            checker.wgl = real

    def test_version_violation_is_illegal_without_the_search(self):
        # What the exact version-order check flags stays illegal when the
        # search runs out of time (it did on a stale read of a long
        # history): never "unknown".
        ev, states = simulate(random.Random(5))
        self.assertTrue(mutate_stale_read(random.Random(5), ev, states))
        real = checker.wgl

        def out_of_time(ops, deadline):
            raise checker.Budget()
        checker.wgl = out_of_time
        try:
            out = checker.check_lines(lines(ev))
            self.assertEqual(out["illegal_keys"], 1, out["results"])
            self.assertEqual(out["unknown_keys"], 0)
        finally:
            checker.wgl = real

    def test_search_deadline_is_enforced(self):
        # A hard history (many concurrent unknown writes) and a deadline
        # already past: the search must stop with Budget or finish, never
        # run on.
        ev, _ = simulate(random.Random(3), n_procs=8, n_ops=300, info_p=0.3)
        ops = split_key(ev)
        import time
        try:
            checker.wgl(ops, time.monotonic() - 1)
        except checker.Budget:
            pass

    def test_malformed_history_is_refused(self):
        with self.assertRaises(checker.HistoryError):
            checker.check_lines(['{"ev": "ok", "id": 1, "t": 0, '
                                 '"key": "k", "f": "get"}'])
        with self.assertRaises(checker.HistoryError):
            checker.check_lines(["{not json"])

    def test_history_without_watch_lines_has_no_watch_verdict(self):
        ev, _ = simulate(random.Random(1))
        out = checker.check_lines(lines(ev))
        self.assertEqual(out["watch"]["lines"], 0)
        self.assertEqual(out["watch"]["total"], 0)


class Watch(unittest.TestCase):
    def check(self, ev, wl):
        return checker.check_lines(lines(ev) + lines(wl), budget_s=30)

    def test_valid_watch_histories_pass(self):
        for seed in SEEDS:
            ev, wl = watched(seed)
            out = self.check(ev, wl)
            w = out["watch"]
            self.assertEqual(w["total"], 0, "seed %d: %s"
                             % (seed, w["violations"]))
            self.assertEqual(w["keys"], 3)
            self.assertGreater(w["events"], 0)
            self.assertGreater(w["reopens"], 0)
            self.assertEqual(out["linearizable_keys"], 3)

    def test_mutations_are_flagged(self):
        for name, (fn, kind) in WATCH_MUTATIONS.items():
            applied = 0
            for seed in SEEDS:
                rng = random.Random(seed)
                ev, wl = watched(seed)
                if not fn(rng, ev, wl):
                    continue
                applied += 1
                w = self.check(ev, wl)["watch"]
                self.assertGreater(w[kind], 0, "%s, seed %d: no %s: %s"
                                   % (name, seed, kind, w))
                self.assertGreater(w["total"], 0)
            self.assertGreaterEqual(applied, len(SEEDS) // 2,
                                    "%s applied to only %d seeds"
                                    % (name, applied))

    def test_exit_status_fails_on_a_watch_violation(self):
        import tempfile
        ev, wl = watched(2)
        for mutate, status in ((False, 0), (True, 1)):
            if mutate:
                wmut_duplicate(random.Random(2), ev, wl)
            with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as f:
                f.write("\n".join(lines(ev) + lines(wl)))
                f.flush()
                self.assertEqual(checker.main([f.name]), status)

    def test_no_events_at_all_is_missing(self):
        # A watch that received nothing while writes were acknowledged is
        # not a pass: the check must not be vacuous.
        ev, wl = watched(3)
        wl = [e for e in wl if e["ev"] != "event"]
        w = self.check(ev, wl)["watch"]
        self.assertGreater(w["missing"], 0)

    def test_writes_before_the_start_are_not_required(self):
        ev, wl = watched(4)
        last = max(e["t"] for e in ev)
        wl = [dict(wl[0], t=last + 1)]  # opened after every write
        w = self.check(ev, wl)["watch"]
        self.assertEqual(w["total"], 0, w["violations"])

    def test_compacted_fails(self):
        ev, wl = watched(5)
        wl.append({"ev": "compacted", "w": "watch", "proc": WATCH_PROC,
                   "t": wl[-1]["t"] + 1, "err": "COMPACTED", "mod_rev": 9})
        w = self.check(ev, wl)["watch"]
        self.assertEqual(w["compacted"], 1)

    def test_failed_write_seen_by_the_watch_is_illegal(self):
        ev = [{"ev": "invoke", "id": 1, "t": 1, "key": "k", "f": "put",
               "value": "a"},
              {"ev": "fail", "id": 1, "t": 2, "key": "k", "f": "put",
               "err": "UNAVAILABLE"}]
        wl = watch_stream(random.Random(0), {"k": [(None, 0), ("a", 1)]})
        w = self.check(ev, wl)["watch"]
        self.assertEqual(w["illegal"], 1, w["violations"])

    def test_unknown_write_seen_by_the_watch_is_legal(self):
        ev = [{"ev": "invoke", "id": 1, "t": 1, "key": "k", "f": "put",
               "value": "a"},
              {"ev": "info", "id": 1, "t": 2, "key": "k", "f": "put",
               "err": "TIMEOUT"}]
        wl = watch_stream(random.Random(0), {"k": [(None, 0), ("a", 1)]})
        w = self.check(ev, wl)["watch"]
        self.assertEqual(w["total"], 0, w["violations"])

    def test_deletes(self):
        ev = []
        for i, (f, val, ver) in enumerate((("put", "a", 1), ("del", None, 0),
                                           ("put", "b", 1))):
            inv = {"ev": "invoke", "id": i, "t": 2 * i + 1, "key": "k",
                   "f": f}
            if val is not None:
                inv["value"] = val
            ev += [inv, {"ev": "ok", "id": i, "t": 2 * i + 2, "key": "k",
                         "f": f, "err": "OK", "version": ver}]
        wl = watch_stream(random.Random(0), {"k": [(None, 0), ("a", 1)]})
        last = wl[-1]
        wl.append(dict(last, t=last["t"] + 1, type="delete", value=None,
                       revision=last["revision"] + 1))
        wl.append(dict(last, t=last["t"] + 2, value="b",
                       revision=last["revision"] + 2))
        w = self.check(ev, wl)["watch"]
        self.assertEqual(w["total"], 0, w["violations"])
        wl[-2]["version"] = 2  # removes a version no put made
        w = self.check(ev, wl)["watch"]
        self.assertEqual(w["illegal"], 1, w["violations"])


class Mutations(unittest.TestCase):
    def run_mutation(self, name, fn, w="register"):
        applied = 0
        for seed in SEEDS:
            rng = random.Random(seed)
            ev, states = simulate(rng, w=w)
            if not fn(rng, ev, states):
                continue
            applied += 1
            out = checker.check_lines(lines(ev), budget_s=30)
            self.assertEqual(out["illegal_keys"], 1,
                             "%s, seed %d: not flagged: %s"
                             % (name, seed, out["results"]))
            ops = split_key(ev)
            if not any(op.kind == "del" for op in ops):
                self.assertTrue(checker.version_order(ops),
                                "%s, seed %d: the fast check missed it"
                                % (name, seed))
            import time
            self.assertIsNotNone(
                checker.wgl(ops, time.monotonic() + 30),
                "%s, seed %d: the search missed it" % (name, seed))
        self.assertGreaterEqual(applied, len(SEEDS) // 2,
                                "%s applied to only %d seeds"
                                % (name, applied))

    def test_stale_read(self):
        self.run_mutation("stale read", mutate_stale_read)

    def test_lost_acknowledged_write(self):
        self.run_mutation("lost write", mutate_lost_write)

    def test_duplicated_version(self):
        self.run_mutation("duplicate version", mutate_duplicate_version)

    def test_reordered_writes(self):
        self.run_mutation("reordered writes", mutate_reordered_writes)

    def test_append_stale_read(self):
        self.run_mutation("append stale read", mutate_stale_read, "append")

    def test_append_lost_element(self):
        self.run_mutation("lost element", mutate_lost_element, "append")


if __name__ == "__main__":
    unittest.main()
