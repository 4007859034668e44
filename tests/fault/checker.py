#!/usr/bin/env python3
"""checker: is a recorded memcoord history linearizable?

The fault workloads (tests/fault/history.h) write one JSON object per line:

  {"ev": "invoke", "id": 7, "proc": 3, "t": 1234567, "w": "register",
   "key": "r/0", "f": "cas", "value": "3:41", "expect": 2}
  {"ev": "ok", "id": 7, "proc": 3, "t": 1239999, "w": "register",
   "key": "r/0", "f": "cas", "version": 3, "err": "OK"}

  ev       invoke | ok | fail | info. ok: the call happened and its answer
           is known (a CAS that answered CONFLICT is ok: it observed a
           state). fail: it certainly did not happen. info: unknown (a
           timeout, a connection lost after the send): it may have happened
           at any time after its invoke, or never.
  id       unique per operation; the completion repeats it
  proc     the client "process"; after an info a client takes a new one
  t        CLOCK_MONOTONIC nanoseconds
  w        workload: register | append | watch (below)
  key      the record's key (namespace included when it matters)
  f        register: get | put | cas | del;  append: read | append
  value    put/cas/append: the value written (unique per write); get/read
           ok: the value read, null when the key does not exist
  expect   cas/del/append: the expected version (0: must not exist)
  version  on ok: the version seen (get: the record's, 0 when missing; a
           successful write: the new one; CONFLICT: the current one)
  err      on ok/fail/info: the error name (OK, CONFLICT, NOT_FOUND, ...)
  elem     append: the element appended (the value is the whole new list,
           elements joined by ",")

The model of one key is a versioned register: state (value, version),
version 0 = absent. put sets (v, ver+1); cas(e, v) does so when ver == e and
else answers CONFLICT with ver; del empties it (the next put is version 1
again); get answers (value, ver). An append is a read followed by a CAS of
the whole list, so both workloads check against the same model, and append
keys get list checks on top (every list read is a prefix of the final one,
no element twice, every acknowledged element present).

The watch workload's lines (tests/fault/history.h) have "w": "watch", the
watcher's proc and t, and no id:

  {"ev": "open", "w": "watch", "proc": 9, "t": 1200000, "key": "reg/",
   "resumed": false}
  {"ev": "event", "w": "watch", "proc": 9, "t": 1240000, "key": "reg/s0/..",
   "type": "put", "version": 3, "value": "r1.7", "revision": 812,
   "shard": 0, "seq": 0}

  ev       open (key: the prefix watched; resumed: from a resume token; the
           first open is the watch's start) | event (type put | promote |
           delete | expire; value null for delete and expire) | close (why:
           periodic or the error; reopened from the token next) | compacted
           (mod_rev) | error (err)
The watch check (check_watch), per watcher and per key, over the events in
the order received: put versions strictly increasing by one (a gap is a
missing event; going back is out-of-order; the same put twice, or an
event at a (shard, revision, seq) already delivered, is repeated); a value
no client wrote to that key, or whose write failed or answered CONFLICT,
or at another version than acknowledged, is illegal; a delete or expire
removes the version of the last put; every acknowledged write of a key
under the prefix invoked after the watch's start has its event (else
missing); a compacted line is itself a violation (events were lost, so
the check would be vacuous). Any violation fails the run.

Each key is checked alone (linearizability is local):
  1. a fast version-order check (exact for keys without deletes): unique
     versions of acknowledged writes, reads that never go back, no
     acknowledged write lost, no version that nobody could have written;
  2. a full linearizability search, Wing & Gong with Lowe's memoization as
     Porcupine does it, over (set of linearized operations, state); info
     operations have no return, so they may be placed anywhere after their
     invoke or left out.
A key is "ok", "illegal" or "unknown" (the search ran out of time); only
"ok" passes.

Usage: checker.py [--json] [--budget-s N] HISTORY.jsonl ...
Exit status: 0 when every key is ok and the watch check found nothing, 1
otherwise, 2 on a malformed history.
"""

import argparse
import json
import sys
import time
from collections import defaultdict

INF = float("inf")
ABSENT = (None, 0)

READ_FS = ("get", "read")
WRITE_FS = ("put", "cas", "del", "append")


class HistoryError(Exception):
    """The history itself is malformed (not a verdict on the store)."""


class Op:
    """One operation: its invoke and its completion, paired."""

    __slots__ = ("id", "proc", "key", "w", "f", "value", "expect", "elem",
                 "call", "ret", "status", "version", "err", "out_value",
                 "idx")

    def __init__(self, inv):
        self.id = inv["id"]
        self.proc = inv.get("proc", 0)
        self.key = inv["key"]
        self.w = inv.get("w", "register")
        self.f = inv["f"]
        self.value = inv.get("value")
        self.expect = inv.get("expect")
        self.elem = inv.get("elem")
        self.call = inv["t"]
        self.ret = INF
        self.status = "info"  # no completion: unknown
        self.version = None
        self.err = None
        self.out_value = None
        self.idx = 0

    def complete(self, c):
        self.status = c["ev"]
        self.err = c.get("err")
        self.version = c.get("version")
        if self.status == "ok":
            self.ret = c["t"]
            if self.f in READ_FS:
                self.out_value = c.get("value")
        else:
            self.ret = INF

    # Model view: an append is a CAS of the whole list; a read is a get.
    @property
    def kind(self):
        if self.f == "read":
            return "get"
        if self.f == "append":
            return "cas"
        return self.f

    def is_write(self):
        return self.f in WRITE_FS

    def wrote(self):
        """True when an ok write changed the state (not CONFLICT etc.)."""
        return self.status == "ok" and self.is_write() and self.err == "OK"

    def describe(self):
        t = "inf" if self.ret == INF else "%.3f" % (self.ret / 1e9)
        parts = ["op %s proc %s %s" % (self.id, self.proc, self.f)]
        if self.value is not None and self.f not in READ_FS:
            parts.append("value=%s" % _short(self.value))
        if self.expect is not None:
            parts.append("expect=%s" % self.expect)
        parts.append("-> %s" % self.status)
        if self.err is not None:
            parts.append(self.err)
        if self.f in READ_FS and self.status == "ok":
            parts.append("value=%s" % _short(self.out_value))
        if self.version is not None:
            parts.append("version=%s" % self.version)
        parts.append("[%.3f, %s]" % (self.call / 1e9, t))
        return " ".join(parts)


def _short(v, n=40):
    if v is None:
        return "null"
    return v if len(v) <= n else v[:n] + "..."


def load(lines):
    """Pair invokes with completions. Returns (ops, watch_lines)."""
    open_ops = {}
    ops = []
    watch = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            e = json.loads(line)
        except ValueError as ex:
            raise HistoryError("line %d: not JSON: %s" % (n, ex))
        if e.get("w") == "watch":
            watch.append(e)
            continue
        ev = e.get("ev")
        if ev == "invoke":
            if e["id"] in open_ops:
                raise HistoryError("line %d: op %s invoked twice"
                                   % (n, e["id"]))
            op = Op(e)
            if op.f not in READ_FS + WRITE_FS:
                raise HistoryError("line %d: unknown f %r" % (n, op.f))
            open_ops[e["id"]] = op
            ops.append(op)
        elif ev in ("ok", "fail", "info"):
            op = open_ops.pop(e.get("id"), None)
            if op is None:
                raise HistoryError("line %d: completion of op %s without "
                                   "an invoke" % (n, e.get("id")))
            if ev == "ok" and e["t"] < op.call:
                raise HistoryError("line %d: op %s returns before its "
                                   "invoke" % (n, op.id))
            op.complete(e)
        else:
            raise HistoryError("line %d: unknown ev %r" % (n, ev))
    # Operations still open at the end are unknown (the client died).
    return ops, watch


# ---- the model ----

def step(state, op):
    """(legal, next state) of op applied to state, given op's output when
    it is known (status ok) or any output when it is not (info)."""
    val, ver = state
    known = op.status == "ok"
    k = op.kind
    if k == "get":
        out = (op.out_value, op.version or 0)
        return (out == state, state)
    if k == "put":
        nxt = (op.value, ver + 1)
        return ((not known) or op.version == ver + 1, nxt)
    if k == "cas":
        if ver == op.expect:
            nxt = (op.value, ver + 1)
            return ((not known) or (op.err == "OK" and op.version == ver + 1),
                    nxt)
        return ((not known) or (op.err == "CONFLICT" and op.version == ver),
                state)
    if k == "del":
        if ver == 0:
            return ((not known) or op.err == "NOT_FOUND", state)
        if op.expect is None or op.expect == ver:
            return ((not known) or op.err == "OK", ABSENT)
        return ((not known) or (op.err == "CONFLICT" and op.version == ver),
                state)
    raise HistoryError("no model for %s" % k)


# ---- 2. linearizability: Wing & Gong + memoization (Lowe, Porcupine) ----

class Budget(Exception):
    pass


def wgl(ops, deadline):
    """None when ops (one key, without fail ops) are linearizable; else the
    operation whose return could not be reached, with the longest
    linearized prefix found. Raises Budget past deadline."""
    # Entries: calls of every op, returns of ok ops. A call at the same
    # time as a return sorts first (the two are then concurrent).
    ents = []
    for i, op in enumerate(ops):
        op.idx = i
        ents.append((op.call, 0, i))
        if op.status == "ok":
            ents.append((op.ret, 1, i))
    ents.sort()
    n = len(ents)
    # A doubly linked list over entry slots 1..n; slot 0 is the head.
    kind = [None] * (n + 1)
    opi = [0] * (n + 1)
    match = [0] * (n + 1)  # call slot -> its return slot (0: none)
    nxt = list(range(1, n + 2))
    prv = list(range(-1, n))
    nxt[n] = 0  # 0 also ends the list
    ret_slot = {}
    for s, (_, k, i) in enumerate(ents, 1):
        kind[s] = k
        opi[s] = i
        if k == 1:
            ret_slot[i] = s
    for s in range(1, n + 1):
        if kind[s] == 0:
            match[s] = ret_slot.get(opi[s], 0)

    def unlink(s):
        nxt[prv[s]] = nxt[s]
        if nxt[s]:
            prv[nxt[s]] = prv[s]

    def relink(s):
        nxt[prv[s]] = s
        if nxt[s]:
            prv[nxt[s]] = s

    rets_left = len(ret_slot)
    state = ABSENT
    lin = 0
    seen = set()
    stack = []
    best = []
    e = nxt[0]
    steps = 0
    while True:
        if rets_left == 0:
            return None  # leftover info calls: they never happened
        steps += 1
        if steps & 0x3FFF == 0 and time.monotonic() > deadline:
            raise Budget()
        if kind[e] == 0:
            op = ops[opi[e]]
            legal, s2 = step(state, op)
            if legal:
                lin2 = lin | (1 << op.idx)
                if (lin2, s2) not in seen:
                    seen.add((lin2, s2))
                    stack.append((e, state))
                    state = s2
                    lin = lin2
                    m = match[e]
                    unlink(e)
                    if m:
                        unlink(m)
                        rets_left -= 1
                    if len(stack) > len(best):
                        best = [ops[opi[x]] for x, _ in stack]
                    e = nxt[0]
                    continue
            e = nxt[e]
        else:
            if not stack:
                return (ops[opi[e]], best)
            e0, state = stack.pop()
            lin &= ~(1 << ops[opi[e0]].idx)
            m = match[e0]
            if m:
                relink(m)
                rets_left += 1
            relink(e0)
            e = nxt[e0]


# ---- 1. the fast version-order check ----

def version_order(ops):
    """Violations (strings) of the version rules for one key without
    deletes; [] when there are none. ops exclude fail ops."""
    bad = []
    by_value = {}
    for op in ops:
        if op.is_write() and op.value is not None:
            if op.value in by_value:
                raise HistoryError("value %r written twice (op %s and %s): "
                                   "write values must be unique"
                                   % (op.value, by_value[op.value].id, op.id))
            by_value[op.value] = op
    # Versions of writes: known for acknowledged ones, learned from reads
    # for unknown ones.
    wver = {}
    at = {}
    for op in ops:
        if op.wrote():
            v = op.version
            if v in at:
                bad.append("duplicate version %s: %s and %s"
                           % (v, at[v].describe(), op.describe()))
            at[v] = op
            wver[op.id] = v
            if op.kind == "cas" and v != op.expect + 1:
                bad.append("CAS expecting %s wrote version %s: %s"
                           % (op.expect, v, op.describe()))
    pos = {}
    for op in ops:
        if op.status != "ok" or op.wrote():
            continue
        v = op.version or 0
        if op.kind == "get":
            if (op.out_value is None) != (v == 0):
                bad.append("read answered value %s at version %s: %s"
                           % (_short(op.out_value), v, op.describe()))
                continue
            if v > 0:
                w = by_value.get(op.out_value)
                if w is None:
                    bad.append("read a value nobody wrote: %s"
                               % op.describe())
                    continue
                if w.status == "ok" and not w.wrote():
                    bad.append("read the value of a write that answered %s: "
                               "%s" % (w.err, op.describe()))
                    continue
                if w.id in wver and wver[w.id] != v:
                    bad.append("read %s at version %s, but it was written "
                               "as version %s: %s"
                               % (_short(op.out_value), v, wver[w.id],
                                  op.describe()))
                    continue
                if v in at and at[v] is not w:
                    bad.append("version %s read with the value of op %s but "
                               "written by op %s: %s"
                               % (v, w.id, at[v].id, op.describe()))
                    continue
                wver[w.id] = v
                at[v] = w
        pos[op.id] = 2 * v + 1  # a read (or a CONFLICT) of version v
    for op in ops:
        if op.is_write() and op.id in wver:
            pos[op.id] = 2 * wver[op.id]
    # Reads never go back and no write is lost: an op invoked after another
    # returned must not sit before it in version order.
    done = sorted(((op.ret, pos[op.id], op) for op in ops
                   if op.id in pos and op.ret != INF),
                  key=lambda x: (x[0], x[1]))
    j = 0
    hi = -1
    hi_op = None
    for op in sorted((o for o in ops if o.id in pos), key=lambda o: o.call):
        while j < len(done) and done[j][0] < op.call:
            if done[j][1] > hi:
                hi, hi_op = done[j][1], done[j][2]
            j += 1
        if pos[op.id] < hi:
            what = "stale read" if pos[op.id] % 2 else "write ordered back"
            bad.append("%s: %s was invoked after %s returned"
                       % (what, op.describe(), hi_op.describe()))
    # Every version up to the highest seen was written by someone.
    if at:
        top = max(max(at), max((p // 2 for p in pos.values()), default=0))
        gaps = [v for v in range(1, top + 1) if v not in at]
        unknown = [op for op in ops if op.is_write() and op.status == "info"
                   and op.id not in wver]
        if len(gaps) > len(unknown):
            bad.append("versions %s were seen or passed but only %d "
                       "unknown write(s) could have made them (lost or "
                       "phantom writes)" % (gaps[:10], len(unknown)))
    return bad


# ---- append: list checks on top of the register ----

def append_checks(ops):
    bad = []
    lists = []
    for op in ops:
        if op.status != "ok":
            continue
        if op.kind == "get" and op.out_value:
            lists.append((op.version, op.out_value.split(","), op))
        if op.wrote():
            lists.append((op.version, op.value.split(","), op))
    for _, elems, op in lists:
        if len(set(elems)) != len(elems):
            bad.append("an element appears twice: %s" % op.describe())
    if not lists:
        return bad
    final = max(lists, key=lambda x: (x[0] or 0, len(x[1])))[1]
    for _, elems, op in lists:
        if elems != final[:len(elems)]:
            bad.append("list is not a prefix of the final list: %s"
                       % op.describe())
    last_ret = max(op.ret for _, _, op in lists)
    final_read_after_all = any(
        op.kind == "get" and op.call > max((o.ret for o in ops if o.wrote()),
                                           default=-1)
        for _, _, op in lists)
    if final_read_after_all:
        have = set(final)
        for op in ops:
            if op.wrote() and op.elem is not None and op.elem not in have:
                bad.append("acknowledged element %s lost: %s"
                           % (op.elem, op.describe()))
    del last_ret
    return bad


# ---- the watch check ----

WATCH_EVS = ("open", "event", "close", "compacted", "error")
WATCH_TYPES = ("put", "promote", "delete", "expire")
WATCH_KINDS = ("missing", "repeated", "out_of_order", "illegal", "compacted")


class _WatchKey:
    __slots__ = ("ver", "val", "seen", "values")

    def __init__(self):
        self.ver = 0        # the version of the last put (0: absent)
        self.val = None
        self.seen = set()   # (version, value) of every put event
        self.values = set()


def _watch_stream(proc, lines, writes, by_value, res):
    """Check the events of one watcher (proc), in the order it received
    them, against the clients' writes. Adds to res."""
    def bad(kind, msg):
        res[kind] += 1
        res["violations"].append("%s: %s" % (kind.replace("_", "-"), msg))

    opens = [e for e in lines if e["ev"] == "open"]
    if not opens or lines[0]["ev"] != "open":
        raise HistoryError("watch proc %s: a watch line before its open"
                           % proc)
    start = opens[0]["t"]
    prefix = opens[0].get("key") or ""
    res["reopens"] += sum(1 for e in opens if e.get("resumed"))
    keys = defaultdict(_WatchKey)
    # Keys written before the start: their first event may be any version.
    before = {key for key, ws in writes.items()
              if any(o.call <= start for o in ws)}
    shard_pos = {}
    shard_seen = defaultdict(set)
    for e in lines:
        if e["ev"] == "compacted":
            bad("compacted", "the watch was answered COMPACTED at t=%.3f "
                "(events lost to it: the check is vacuous)" % (e["t"] / 1e9))
            continue
        if e["ev"] != "event":
            continue
        res["events"] += 1
        key, typ, ver = e["key"], e["type"], e["version"]
        val = e.get("value")
        what = "%s %s version %s value %s (shard %s revision %s seq %s)" % (
            key, typ, ver, _short(val), e["shard"], e["revision"], e["seq"])
        if not key.startswith(prefix):
            bad("illegal", "an event outside the prefix %r: %s"
                % (prefix, what))
            continue
        pos = (e["revision"], e["seq"])
        if pos in shard_seen[e["shard"]]:
            bad("repeated", "an event delivered twice: %s" % what)
            continue
        shard_seen[e["shard"]].add(pos)
        if e["shard"] in shard_pos and pos < shard_pos[e["shard"]]:
            bad("out_of_order", "an event before one of its shard's "
                "earlier revision %s seq %s: %s"
                % (shard_pos[e["shard"]] + (what,)))
            continue
        shard_pos[e["shard"]] = pos
        k = keys[key]
        if typ in ("delete", "expire"):
            if ver != k.ver or k.ver == 0:
                bad("illegal", "%s removed version %s but the last put the "
                    "watch saw was version %s: %s" % (typ, ver, k.ver, what))
            k.ver, k.val = 0, None
            continue
        if (ver, val) in k.seen:
            bad("repeated", "the same put twice: %s" % what)
            continue
        if ver <= k.ver:
            bad("out_of_order", "version %s after version %s: %s"
                % (ver, k.ver, what))
            continue
        if typ == "promote":
            if val != k.val:
                bad("illegal", "a promote changed the value from %s: %s"
                    % (_short(k.val), what))
        else:
            w = by_value.get(val)
            if w is None or w.key != key:
                bad("illegal", "a value no client wrote to this key: %s"
                    % what)
            elif w.status == "fail":
                bad("illegal", "the value of a write that failed (%s): %s"
                    % (w.err, what))
            elif w.status == "ok" and not w.wrote():
                bad("illegal", "the value of a write that answered %s: %s"
                    % (w.err, what))
            elif w.wrote() and w.version != ver:
                bad("illegal", "acknowledged as version %s: %s"
                    % (w.version, what))
        # Versions of a key grow by one per put: a gap is a write whose
        # event never came (unless the key was written before the start).
        if ver != k.ver + 1 and (k.ver > 0 or key not in before):
            bad("missing", "versions %s..%s never came before: %s"
                % (k.ver + 1, ver - 1, what))
        k.ver, k.val = ver, val
        k.seen.add((ver, val))
        k.values.add(val)
    checked = set(keys)
    for key, ws in writes.items():
        if not key.startswith(prefix):
            continue
        for w in ws:
            if w.wrote() and w.value is not None and w.call > start:
                checked.add(key)
                if w.value not in keys[key].values:
                    bad("missing", "no event of an acknowledged write: %s %s"
                        % (key, w.describe()))
    res["keys"] += len(checked)


def check_watch(ops, wlines):
    """The watch check: per key, its events in the order received, put
    versions strictly increasing by one, none repeated, none invented (a
    value no client wrote, or one whose write failed), deletes removing
    the last put's version, and every acknowledged write invoked after the
    watch started present. Returns counts and violations."""
    res = {"lines": len(wlines), "events": 0, "keys": 0, "reopens": 0,
           "violations": []}
    for kind in WATCH_KINDS:
        res[kind] = 0
    writes = defaultdict(list)
    by_value = {}
    for op in ops:
        if op.is_write():
            writes[op.key].append(op)
            if op.value is not None:
                by_value.setdefault(op.value, op)
    streams = defaultdict(list)
    for e in wlines:
        if e.get("ev") not in WATCH_EVS or "t" not in e:
            raise HistoryError("watch line without a known ev or t: %r" % e)
        if e["ev"] == "event":
            for f in ("key", "type", "version", "revision", "shard", "seq"):
                if f not in e:
                    raise HistoryError("watch event without %s: %r" % (f, e))
            if e["type"] not in WATCH_TYPES:
                raise HistoryError("watch event of type %r" % e["type"])
        streams[e.get("proc", 0)].append(e)
    for proc, lines in sorted(streams.items()):
        _watch_stream(proc, lines, writes, by_value, res)
    res["total"] = sum(res[k] for k in WATCH_KINDS)
    return res


# ---- driver ----

def check_key(key, ops, budget_s):
    ops = [op for op in ops if op.status != "fail"]
    # An unknown read tells nothing.
    ops = [op for op in ops if not (op.status == "info" and
                                    not op.is_write())]
    res = {"key": key, "ops": len(ops), "violations": []}
    has_del = any(op.kind == "del" for op in ops)
    if not has_del:
        res["violations"] += version_order(ops)
    if any(op.w == "append" for op in ops):
        res["violations"] += append_checks(ops)
    started = time.monotonic()
    try:
        r = wgl(ops, started + budget_s)
    except Budget:
        # The version-order check is exact where it runs: what it objects
        # to is illegal whether or not the search finished.
        res["verdict"] = "illegal" if res["violations"] else "unknown"
        res["wgl"] = "no verdict within %.0f s" % budget_s
        return res
    res["wgl_s"] = round(time.monotonic() - started, 3)
    if r is None:
        res["wgl"] = "linearizable"
        res["verdict"] = "illegal" if res["violations"] else "ok"
        if res["violations"]:
            res["wgl"] += " (but the version check objects: a checker bug " \
                          "or a history the model does not cover)"
    else:
        op, prefix = r
        res["verdict"] = "illegal"
        res["wgl"] = "not linearizable: no order reaches the return of %s" \
                     % op.describe()
        res["prefix"] = [o.describe() for o in prefix[-8:]]
    return res


def check_ops(ops, budget_s=60.0):
    by_key = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    results = [check_key(k, v, budget_s) for k, v in sorted(by_key.items())]
    count = defaultdict(int)
    for op in ops:
        count[op.status] += 1
    lost = sum(1 for r in results for v in r["violations"]
               if "lost" in v or "stale read" in v)
    return {
        "keys": len(results),
        "linearizable_keys": sum(r["verdict"] == "ok" for r in results),
        "illegal_keys": sum(r["verdict"] == "illegal" for r in results),
        "unknown_keys": sum(r["verdict"] == "unknown" for r in results),
        "ops": len(ops),
        "ok": count["ok"],
        "fail": count["fail"],
        "info": count["info"],
        "lost_or_stale": lost,
        "results": results,
    }


def check_lines(lines, budget_s=60.0):
    ops, watch = load(lines)
    out = check_ops(ops, budget_s)
    out["watch"] = check_watch(ops, watch)
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("history", nargs="+")
    ap.add_argument("--json", action="store_true",
                    help="print the whole report as JSON")
    ap.add_argument("--budget-s", type=float, default=60.0,
                    help="search time per key before the verdict is unknown")
    a = ap.parse_args(argv)
    lines = []
    for path in a.history:
        with open(path) as f:
            lines.extend(f.readlines())
    try:
        out = check_lines(lines, a.budget_s)
    except HistoryError as ex:
        print("checker: malformed history: %s" % ex, file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        for r in out["results"]:
            if r["verdict"] != "ok":
                print("key %s: %s (%d ops): %s" % (r["key"], r["verdict"],
                                                  r["ops"], r.get("wgl")))
                for v in r["violations"][:10]:
                    print("  - %s" % v)
                for p in r.get("prefix", []):
                    print("    after: %s" % p)
    wt = out["watch"]
    for v in wt["violations"][:20]:
        print("watch: %s" % v)
    if len(wt["violations"]) > 20:
        print("watch: ... and %d more" % (len(wt["violations"]) - 20))
    print("checker: ops=%d ok=%d fail=%d info=%d keys=%d linearizable=%d "
          "illegal=%d unknown=%d watch-events=%d watch-keys=%d "
          "watch-missing=%d watch-repeated=%d watch-out-of-order=%d "
          "watch-illegal=%d watch-compacted=%d watch-violations=%d"
          % (out["ops"], out["ok"], out["fail"], out["info"], out["keys"],
             out["linearizable_keys"], out["illegal_keys"],
             out["unknown_keys"], wt["events"], wt["keys"], wt["missing"],
             wt["repeated"], wt["out_of_order"], wt["illegal"],
             wt["compacted"], wt["total"]))
    return 0 if (out["linearizable_keys"] == out["keys"] and
                 wt["total"] == 0) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
