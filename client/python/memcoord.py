"""memcoord for Python: agents' shared memory, over libmemcoord (ctypes).

Standard library only. The C library does the work (routing to shard
leaders, retries with the same request id, deadlines); this module turns
its calls into Pythonic ones and its error codes into exceptions::

    import memcoord

    with memcoord.Client("tcp://127.0.0.1:7400", namespace="team") as mc:
        mc.put("swarm/researcher/status", "draft ready")
        rec = mc.get("swarm/researcher/status")
        print(rec.text, rec.version)
        mc.update("swarm/counter", lambda v: str(int(v or 0) + 1))

Values are bytes on the wire; ``str`` values are stored as UTF-8 and
``Record.text`` decodes them. Every call is synchronous and thread-safe:
threads may share one Client (ctypes releases the GIL during each call).

The library is found through $MEMCOORD_LIB, then next to this file's
checkout (build/libmemcoord.so), then the system's library path.
"""

import ctypes
import ctypes.util
import json
import os
import random
import threading
import time

__all__ = [
    "Client", "Record", "WriteResult", "Workflow",
    "MemcoordError", "NotFoundError", "ConflictError", "InvalidArgumentError",
    "TooLargeError", "UnauthenticatedError", "PermissionDeniedError",
    "QuotaExceededError", "NotLeaderError", "UnavailableError",
    "TimedOutError", "OutcomeUnknownError", "CompactedError",
    "InternalError", "TIERS", "Watch", "Event", "TxnResult",
    "exists", "missing", "version_is", "value_is", "put_op", "delete_op",
    "get_op",
]

# ---- errors: one class per code of the table in memcoord.h ----

_CODES = [
    "OK", "NOT_FOUND", "CONFLICT", "INVALID_ARGUMENT", "TOO_LARGE",
    "UNAUTHENTICATED", "PERMISSION_DENIED", "QUOTA_EXCEEDED", "NOT_LEADER",
    "UNAVAILABLE", "TIMEOUT", "COMPACTED", "INTERNAL",
]


class MemcoordError(Exception):
    """A call failed. ``code`` is the name from the error table
    ("CONFLICT"), ``version`` the version the server saw (0 when the key is
    missing), ``message`` the server's sentence."""

    code = "UNKNOWN"

    def __init__(self, message, version=0):
        super().__init__("%s: %s" % (self.code, message))
        self.message = message
        self.version = version


class NotFoundError(MemcoordError, KeyError):
    """The key does not exist (or has expired)."""
    code = "NOT_FOUND"

    def __str__(self):  # KeyError would quote the message
        return "%s: %s" % (self.code, self.message)


class ConflictError(MemcoordError):
    """The key is not at the expected version; ``version`` is where it is."""
    code = "CONFLICT"


class InvalidArgumentError(MemcoordError, ValueError):
    """A bad key, namespace, option or request."""
    code = "INVALID_ARGUMENT"


class TooLargeError(MemcoordError, ValueError):
    """A value or message over its limit."""
    code = "TOO_LARGE"


class UnauthenticatedError(MemcoordError):
    code = "UNAUTHENTICATED"


class PermissionDeniedError(MemcoordError):
    code = "PERMISSION_DENIED"


class QuotaExceededError(MemcoordError):
    code = "QUOTA_EXCEEDED"


class NotLeaderError(MemcoordError):
    code = "NOT_LEADER"


class UnavailableError(MemcoordError):
    """No node could serve the call in time; a write was not applied."""
    code = "UNAVAILABLE"


class TimedOutError(MemcoordError, TimeoutError):
    """The call ran out of time. For a write the outcome is unknown: it may
    have applied (read before deciding; a new write could apply it twice).
    For wait, the condition did not hold in time."""
    code = "TIMEOUT"


OutcomeUnknownError = TimedOutError  # what it means for a write


class CompactedError(MemcoordError):
    """A watch fell behind its shard's event ring: ``revision`` is the
    shard's current revision, where the watch goes on. Re-read the keys,
    then keep watching."""
    code = "COMPACTED"

    def __init__(self, message, version=0, revision=0):
        super().__init__(message, version)
        self.revision = revision


class InternalError(MemcoordError):
    code = "INTERNAL"


_ERRORS = {cls.code: cls for cls in (
    NotFoundError, ConflictError, InvalidArgumentError, TooLargeError,
    UnauthenticatedError, PermissionDeniedError, QuotaExceededError,
    NotLeaderError, UnavailableError, TimedOutError, CompactedError,
    InternalError)}

TIERS = {"default": 0, "short": 1, "mid": 2, "long": 3}
_TIER_NAMES = {v: k for k, v in TIERS.items()}

# ---- the C structures of memcoord.h ----


class _Result(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("version", ctypes.c_uint64),
                ("create_rev", ctypes.c_uint64), ("mod_rev", ctypes.c_uint64),
                ("message", ctypes.c_char * 256)]


class _Record(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("key_len", ctypes.c_size_t),
                ("value", ctypes.POINTER(ctypes.c_uint8)),
                ("value_len", ctypes.c_size_t),
                ("version", ctypes.c_uint64), ("create_rev", ctypes.c_uint64),
                ("mod_rev", ctypes.c_uint64), ("tier", ctypes.c_int),
                ("expires_at_ms", ctypes.c_int64),
                ("updated_at_ms", ctypes.c_int64)]


class _Page(ctypes.Structure):
    _fields_ = [("records", ctypes.POINTER(_Record)), ("n", ctypes.c_size_t),
                ("more", ctypes.c_bool), ("next_cursor", ctypes.c_char_p)]


class _Options(ctypes.Structure):
    _fields_ = [("timeout_ms", ctypes.c_int)]


class _PutOpts(ctypes.Structure):
    _fields_ = [("expect_version", ctypes.c_int64), ("tier", ctypes.c_int),
                ("ttl_ms", ctypes.c_uint64)]


class _ReadOpts(ctypes.Structure):
    _fields_ = [("serializable", ctypes.c_bool)]


class _ListOpts(ctypes.Structure):
    _fields_ = [("start_after", ctypes.c_char_p), ("limit", ctypes.c_uint32),
                ("keys_only", ctypes.c_bool),
                ("serializable", ctypes.c_bool),
                ("pattern", ctypes.c_char_p)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("shard", ctypes.c_uint32),
                ("revision", ctypes.c_uint64), ("seq", ctypes.c_uint32),
                ("record", _Record)]


class _WatchOpts(ctypes.Structure):
    _fields_ = [("prefix", ctypes.c_bool), ("after_rev", ctypes.c_int64),
                ("resume_token", ctypes.c_char_p)]


class _WaitOpts(ctypes.Structure):
    _fields_ = [("cond", ctypes.c_int), ("value", ctypes.c_char_p),
                ("value_len", ctypes.c_size_t), ("version", ctypes.c_uint64),
                ("timeout_ms", ctypes.c_int)]


class _Cmp(ctypes.Structure):
    _fields_ = [("target", ctypes.c_int), ("key", ctypes.c_char_p),
                ("op", ctypes.c_int), ("version", ctypes.c_uint64),
                ("value", ctypes.c_char_p), ("value_len", ctypes.c_size_t)]


class _Op(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("key", ctypes.c_char_p),
                ("value", ctypes.c_char_p), ("value_len", ctypes.c_size_t),
                ("tier", ctypes.c_int), ("ttl_ms", ctypes.c_uint64)]


class _TxnReq(ctypes.Structure):
    _fields_ = [("compares", ctypes.POINTER(_Cmp)),
                ("n_compares", ctypes.c_size_t),
                ("then_ops", ctypes.POINTER(_Op)), ("n_then", ctypes.c_size_t),
                ("else_ops", ctypes.POINTER(_Op)), ("n_else", ctypes.c_size_t)]


class _OpResult(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("code", ctypes.c_int),
                ("version", ctypes.c_uint64), ("create_rev", ctypes.c_uint64),
                ("mod_rev", ctypes.c_uint64), ("record", _Record)]


class _TxnResult(ctypes.Structure):
    _fields_ = [("succeeded", ctypes.c_bool), ("revision", ctypes.c_uint64),
                ("results", ctypes.POINTER(_OpResult)),
                ("n_results", ctypes.c_size_t)]


_REPLICAS_MAX = 7


class _ShardStatus(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32), ("slot_lo", ctypes.c_uint32),
                ("slot_hi", ctypes.c_uint32), ("leader_id", ctypes.c_uint64),
                ("term", ctypes.c_uint64), ("applied_index", ctypes.c_uint64),
                ("last_index", ctypes.c_uint64),
                ("records", ctypes.c_uint64 * 4),
                ("applied_entries", ctypes.c_uint64),
                ("skipped_entries", ctypes.c_uint64),
                ("is_leader", ctypes.c_bool),
                ("replicas", ctypes.c_uint64 * _REPLICAS_MAX),
                ("n_replicas", ctypes.c_uint32)]


class _Member(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("url", ctypes.c_char_p),
                ("raft_addr", ctypes.c_char_p)]


class _Status(ctypes.Structure):
    _fields_ = [("node_id", ctypes.c_uint64), ("version", ctypes.c_char_p),
                ("listen", ctypes.c_char_p), ("uptime_ms", ctypes.c_uint64),
                ("shard_count", ctypes.c_uint32),
                ("shards", ctypes.POINTER(_ShardStatus)),
                ("n_shards", ctypes.c_size_t),
                ("members", ctypes.POINTER(_Member)),
                ("n_members", ctypes.c_size_t),
                ("meta_leader_id", ctypes.c_uint64),
                ("meta_term", ctypes.c_uint64),
                ("meta_voter", ctypes.c_bool)]


_P = ctypes.POINTER
_c = ctypes.c_void_p  # mc_client *

_SIGNATURES = {
    "mc_client_open": ([ctypes.c_char_p, _P(_Options), _P(_c), _P(_Result)],
                       ctypes.c_int),
    "mc_client_close": ([_c], None),
    "mc_put": ([_c, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                ctypes.c_size_t, _P(_PutOpts), _P(_Result)], ctypes.c_int),
    "mc_delete": ([_c, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int64,
                   _P(_Result)], ctypes.c_int),
    "mc_get": ([_c, ctypes.c_char_p, ctypes.c_char_p, _P(_ReadOpts),
                _P(_P(_Record)), _P(_Result)], ctypes.c_int),
    "mc_record_free": ([_P(_Record)], None),
    "mc_list": ([_c, ctypes.c_char_p, ctypes.c_char_p, _P(_ListOpts),
                 _P(_P(_Page)), _P(_Result)], ctypes.c_int),
    "mc_page_free": ([_P(_Page)], None),
    "mc_status_get": ([_c, _P(_P(_Status)), _P(_Result)], ctypes.c_int),
    "mc_status_free": ([_P(_Status)], None),
    "mc_shard_transfer_leader": ([_c, ctypes.c_uint32, ctypes.c_uint64,
                                  _P(ctypes.c_uint64), _P(_Result)],
                                 ctypes.c_int),
    "mc_shard_hash": ([_c, ctypes.c_uint32, _P(ctypes.c_uint64),
                       _P(ctypes.c_uint64), _P(_Result)], ctypes.c_int),
    "mc_watch_open": ([_c, ctypes.c_char_p, ctypes.c_char_p, _P(_WatchOpts),
                       _P(ctypes.c_void_p), _P(_Result)], ctypes.c_int),
    "mc_watch_next": ([ctypes.c_void_p, ctypes.c_int, _P(_P(_Event)),
                       _P(ctypes.c_size_t), _P(_Result)], ctypes.c_int),
    "mc_events_free": ([_P(_Event), ctypes.c_size_t], None),
    "mc_watch_token": ([ctypes.c_void_p], ctypes.c_char_p),
    "mc_watch_close": ([ctypes.c_void_p], None),
    "mc_wait": ([_c, ctypes.c_char_p, ctypes.c_char_p, _P(_WaitOpts),
                 _P(_P(_Record)), _P(_Result)], ctypes.c_int),
    "mc_txn": ([_c, ctypes.c_char_p, _P(_TxnReq), _P(_P(_TxnResult)),
                _P(_Result)], ctypes.c_int),
    "mc_txn_result_free": ([_P(_TxnResult)], None),
}


def _load():
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get("MEMCOORD_LIB"),
                  os.path.join(here, "..", "..", "build", "libmemcoord.so"),
                  ctypes.util.find_library("memcoord")]
    for path in candidates:
        if path and (os.path.exists(path) or not os.path.isabs(path)):
            try:
                lib = ctypes.CDLL(path)
                break
            except OSError:
                continue
    else:
        raise ImportError("libmemcoord not found: build it with `make`, or "
                          "set MEMCOORD_LIB to the path of libmemcoord.so")
    for name, (args, ret) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = ret
    return lib


_lib = _load()


def _raise(code, res):
    name = _CODES[code] if 0 <= code < len(_CODES) else "INTERNAL"
    cls = _ERRORS.get(name, InternalError)
    message = res.message.decode("utf-8", "replace")
    if cls is CompactedError:
        raise CompactedError(message, res.version, res.mod_rev)
    raise cls(message, res.version)


def _bytes(value):
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError("a value is str or bytes, not %s" % type(value).__name__)


def _key(key):
    if not isinstance(key, str):
        raise TypeError("a key is str, not %s" % type(key).__name__)
    return key.encode("utf-8")


# ---- results ----

class Record:
    """One record as read: ``key`` (str), ``value`` (bytes), ``version``,
    ``create_rev``, ``mod_rev``, ``tier`` ("short", "mid", "long"),
    ``expires_at`` and ``updated_at`` (seconds since the epoch, float;
    ``expires_at`` is None when the record never expires)."""

    __slots__ = ("key", "value", "version", "create_rev", "mod_rev", "tier",
                 "expires_at", "updated_at")

    def __init__(self, r, keys_only=False):
        self.key = r.key[:r.key_len].decode("utf-8")
        self.value = None if keys_only else ctypes.string_at(r.value,
                                                             r.value_len)
        self.version = r.version
        self.create_rev = r.create_rev
        self.mod_rev = r.mod_rev
        self.tier = _TIER_NAMES.get(r.tier, "default")
        self.expires_at = r.expires_at_ms / 1000.0 if r.expires_at_ms else None
        self.updated_at = r.updated_at_ms / 1000.0

    @property
    def text(self):
        """The value decoded as UTF-8."""
        return None if self.value is None else self.value.decode("utf-8")

    def json(self):
        """The value parsed as JSON."""
        return json.loads(self.value)

    def __repr__(self):
        return "Record(key=%r, version=%d, tier=%s, value=%r)" % (
            self.key, self.version, self.tier, self.value)


class WriteResult:
    """What a put or delete did: the new ``version`` (0 after a delete),
    ``create_rev`` and ``mod_rev`` (the shard's Raft index of the write)."""

    __slots__ = ("version", "create_rev", "mod_rev")

    def __init__(self, res):
        self.version = res.version
        self.create_rev = res.create_rev
        self.mod_rev = res.mod_rev

    def __repr__(self):
        return "WriteResult(version=%d, mod_rev=%d)" % (self.version,
                                                        self.mod_rev)


def _seconds_ms(seconds):
    return 0 if seconds is None else max(1, int(round(seconds * 1000)))


# ---- the client ----

class _Closing:
    """``with`` closes, and so does the garbage collector."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Client(_Closing):
    """A connection to a memcoord cluster.

    ``endpoints``: "tcp://host:port,..." (default $MEMCOORD_ENDPOINTS, else
    tcp://127.0.0.1:7400); ``namespace``: the default namespace of every
    call (each call may name another with ``ns=``); ``timeout``: seconds per
    call, retries included."""

    def __init__(self, endpoints=None, namespace="default", timeout=5.0):
        if endpoints is None:
            endpoints = os.environ.get("MEMCOORD_ENDPOINTS",
                                       "tcp://127.0.0.1:7400")
        self.namespace = namespace
        self.timeout = timeout
        self._c = _c()
        res = _Result()
        opts = _Options(int(timeout * 1000))
        rv = _lib.mc_client_open(endpoints.encode(), ctypes.byref(opts),
                                 ctypes.byref(self._c), ctypes.byref(res))
        if rv != 0:
            _raise(rv, res)
        self._lock = threading.Lock()

    def close(self):
        """Close the connection; the client is unusable afterwards."""
        with self._lock:
            if self._c:
                _lib.mc_client_close(self._c)
                self._c = _c()


    def _ns(self, ns):
        return (ns or self.namespace).encode("utf-8")

    def _handle(self):
        if not self._c:
            raise InvalidArgumentError("the client is closed")
        return self._c

    # -- key-value --

    def put(self, key, value, *, expect_version=None, tier=None, ttl=None,
            ns=None):
        """Store ``value`` (str or bytes) at ``key``.

        ``expect_version``: None (unconditional), 0 (the key must not
        exist) or n (it must be at version n): compare-and-swap.
        ``tier``: "short", "mid" or "long" (default: the server's choice);
        ``ttl``: seconds to live. Returns a WriteResult.
        Raises ConflictError (``.version`` is the current version),
        OutcomeUnknownError, ..."""
        data = _bytes(value)
        opts = _PutOpts(-1 if expect_version is None else expect_version,
                        TIERS[tier or "default"], _seconds_ms(ttl))
        res = _Result()
        rv = _lib.mc_put(self._handle(), self._ns(ns), _key(key), data,
                         len(data), ctypes.byref(opts), ctypes.byref(res))
        if rv != 0:
            _raise(rv, res)
        return WriteResult(res)

    def get(self, key, *, serializable=False, ns=None):
        """The record at ``key``; raises NotFoundError when there is none.
        ``serializable``: read a replica without a Raft barrier (faster,
        may be slightly stale)."""
        out = _P(_Record)()
        res = _Result()
        opts = _ReadOpts(serializable)
        rv = _lib.mc_get(self._handle(), self._ns(ns), _key(key),
                         ctypes.byref(opts), ctypes.byref(out),
                         ctypes.byref(res))
        if rv != 0:
            _raise(rv, res)
        try:
            return Record(out.contents)
        finally:
            _lib.mc_record_free(out)

    def get_or_none(self, key, **kw):
        """The record at ``key``, or None when there is none."""
        try:
            return self.get(key, **kw)
        except NotFoundError:
            return None

    def delete(self, key, *, expect_version=None, ns=None):
        """Delete ``key`` (only at ``expect_version`` when given).
        Raises NotFoundError, ConflictError, ..."""
        res = _Result()
        rv = _lib.mc_delete(self._handle(), self._ns(ns), _key(key),
                            -1 if expect_version is None else expect_version,
                            ctypes.byref(res))
        if rv != 0:
            _raise(rv, res)
        return WriteResult(res)

    def list(self, prefix="", *, pattern=None, limit=None, keys_only=False,
             serializable=False, page_size=1000, ns=None):
        """Yield the records whose keys start with ``prefix`` -- or, with
        ``pattern``, match that SQL LIKE pattern ('%' any run, '_' one
        character, '\\' escapes: "swarm/%/status") -- in key order, across
        all shards (``limit``: at most that many). With ``keys_only`` the
        records' ``value`` is None."""
        if pattern is not None and prefix:
            raise InvalidArgumentError("give a prefix or a pattern, not both")
        pat = None if pattern is None else pattern.encode("utf-8")
        cursor = None
        left = limit
        while left is None or left > 0:
            size = page_size if left is None else min(page_size, left)
            opts = _ListOpts(cursor, size, keys_only, serializable, pat)
            out = _P(_Page)()
            res = _Result()
            rv = _lib.mc_list(self._handle(), self._ns(ns),
                              prefix.encode("utf-8"), ctypes.byref(opts),
                              ctypes.byref(out), ctypes.byref(res))
            if rv != 0:
                _raise(rv, res)
            try:
                page = out.contents
                records = [Record(page.records[i], keys_only)
                           for i in range(page.n)]
                more = page.more
                cursor = page.next_cursor if more else None
            finally:
                _lib.mc_page_free(out)
            for r in records:
                yield r
            if left is not None:
                left -= len(records)
            if not more:
                return

    def keys(self, prefix="", **kw):
        """The keys under ``prefix``, as a list."""
        return [r.key for r in self.list(prefix, keys_only=True, **kw)]

    # -- coordination --

    def wait(self, key, *, equals=None, version=None, timeout=30.0,
             ns=None):
        """Block until ``key`` exists (default), holds exactly ``equals``,
        or is at ``version`` or later; return its Record as of that moment.
        The node answers the moment the write applies: nothing polls.
        Raises TimedOutError when the condition did not hold in time."""
        if equals is not None and version is not None:
            raise InvalidArgumentError("wait for a value or a version, "
                                       "not both")
        value = None if equals is None else _bytes(equals)
        cond = 1 if value is None and version is None else (
            2 if value is not None else 3)
        opts = _WaitOpts(cond, value, 0 if value is None else len(value),
                         version or 0, _seconds_ms(timeout))
        out = _P(_Record)()
        res = _Result()
        rv = _lib.mc_wait(self._handle(), self._ns(ns), _key(key),
                          ctypes.byref(opts), ctypes.byref(out),
                          ctypes.byref(res))
        if rv != 0:
            _raise(rv, res)
        try:
            return Record(out.contents)
        finally:
            _lib.mc_record_free(out)

    def watch(self, key, *, prefix=False, after_rev=None, resume_token=None,
              ns=None):
        """A Watch of ``key`` (with ``prefix``: of every key under it, in
        every shard) from now, from ``after_rev`` (events with a greater
        revision), or exactly after ``resume_token`` (Watch.token of an
        earlier watch of the same key or prefix)."""
        return Watch(self, key, prefix, after_rev, resume_token, ns)

    def txn(self, compares=(), then=(), otherwise=(), *, ns=None):
        """Run a transaction on keys of one shard (give them a common
        {tag}): when every compare holds, the ``then`` operations run,
        else the ``otherwise`` ones, atomically. Build compares with
        exists, missing, version_is, value_is and operations with put_op,
        delete_op, get_op. Returns a TxnResult."""
        keep = []  # the bytes the C structures point into

        def b(x):
            keep.append(x)
            return x

        cmps = (_Cmp * max(1, len(compares)))()
        for i, (target, key, op, version, value) in enumerate(compares):
            cmps[i] = _Cmp(target, b(_key(key)), op, version,
                           b(value) if value is not None else None,
                           0 if value is None else len(value))

        def ops(lst):
            arr = (_Op * max(1, len(lst)))()
            for i, (typ, key, value, tier, ttl) in enumerate(lst):
                arr[i] = _Op(typ, b(_key(key)),
                             b(value) if value is not None else None,
                             0 if value is None else len(value),
                             TIERS[tier or "default"], _seconds_ms(ttl))
            return arr

        t, e = ops(then), ops(otherwise)
        req = _TxnReq(cmps, len(compares), t, len(then), e, len(otherwise))
        out = _P(_TxnResult)()
        res = _Result()
        rv = _lib.mc_txn(self._handle(), self._ns(ns), ctypes.byref(req),
                         ctypes.byref(out), ctypes.byref(res))
        if rv != 0:
            _raise(rv, res)
        try:
            return TxnResult(out.contents)
        finally:
            _lib.mc_txn_result_free(out)

    def handoff(self, key, value, **kw):
        """Hand work to the next agent: store ``value`` at ``key`` (the
        receiver waits for it with ``receive``)."""
        return self.put(key, value, **kw)

    def receive(self, key, timeout=30.0, **kw):
        """Wait for a hand-off at ``key`` and return its Record."""
        return self.wait(key, timeout=timeout, **kw)

    def barrier(self, keys, timeout=30.0, ns=None):
        """Fan-in: wait until every key of ``keys`` exists, within one
        ``timeout`` for all; return {key: Record}."""
        deadline = time.monotonic() + timeout
        out = {}
        for k in keys:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimedOutError("barrier: %s did not arrive in time" % k)
            out[k] = self.wait(k, timeout=left, ns=ns)
        return out

    def gate(self, key, value, timeout=30.0, ns=None):
        """Wait until ``key`` holds exactly ``value`` (e.g. a reviewer's
        "approved"); return its Record."""
        return self.wait(key, equals=value, timeout=timeout, ns=ns)

    # -- administration --

    def status(self):
        """One node's view of the cluster, as a dict."""
        out = _P(_Status)()
        res = _Result()
        rv = _lib.mc_status_get(self._handle(), ctypes.byref(out),
                                ctypes.byref(res))
        if rv != 0:
            _raise(rv, res)
        try:
            s = out.contents
            return {
                "node_id": s.node_id,
                "version": s.version.decode(),
                "listen": s.listen.decode(),
                "uptime_ms": s.uptime_ms,
                "shard_count": s.shard_count,
                "meta": {"leader": s.meta_leader_id, "term": s.meta_term,
                         "voter": s.meta_voter},
                "members": [{"id": m.id, "url": m.url.decode(),
                             "raft_addr": m.raft_addr.decode()}
                            for m in (s.members[i]
                                      for i in range(s.n_members))],
                "shards": [{
                    "id": h.id, "slots": (h.slot_lo, h.slot_hi),
                    "leader": h.leader_id, "term": h.term,
                    "applied_index": h.applied_index,
                    "is_leader": h.is_leader,
                    "replicas": list(h.replicas[:h.n_replicas]),
                    "records": {"short": h.records[1], "mid": h.records[2],
                                "long": h.records[3]},
                } for h in (s.shards[i] for i in range(s.n_shards))],
            }
        finally:
            _lib.mc_status_free(out)

    def transfer_leader(self, shard, to_node=0):
        """Move shard's leadership (to_node 0: the most up-to-date other
        replica). Returns the new leader's node id."""
        leader = ctypes.c_uint64()
        res = _Result()
        rv = _lib.mc_shard_transfer_leader(self._handle(), shard, to_node,
                                           ctypes.byref(leader),
                                           ctypes.byref(res))
        if rv != 0:
            _raise(rv, res)
        return leader.value

    # -- recipes --

    def update(self, key, fn, *, retries=1000, backoff=0.002,
               max_backoff=0.2, tier=None, ttl=None, ns=None):
        """Read-modify-write with optimistic locking: read ``key`` (its
        value is None when missing), compute ``fn(value)``, and store the
        result only if nobody wrote in between (CAS on the version read);
        on CONFLICT read again and retry, with jittered exponential
        backoff. Returns (new_value, WriteResult). ``fn`` may run several
        times: keep it free of side effects. Raises ConflictError after
        ``retries`` conflicts, and OutcomeUnknownError as it comes (that
        write may have applied: read before deciding)."""
        delay = backoff
        for _ in range(retries + 1):
            rec = self.get_or_none(key, ns=ns)
            new = fn(None if rec is None else rec.value)
            try:
                w = self.put(key, new, expect_version=rec.version if rec
                             else 0, tier=tier, ttl=ttl, ns=ns)
                return new, w
            except ConflictError:
                time.sleep(random.uniform(0, delay))
                delay = min(delay * 2, max_backoff)
        raise ConflictError("%s: still contended after %d retries" %
                            (key, retries))

    def workflow(self, name, **kw):
        """A checkpointed workflow named ``name``: see Workflow."""
        return Workflow(self, name, **kw)


_EVENT_TYPES = {1: "put", 2: "delete", 3: "expire", 4: "promote"}


class Event:
    """One change: ``type`` ("put", "delete", "expire", "promote"),
    ``shard``, ``revision`` (the shard's Raft index of the write), ``seq``
    (order within one revision), and the ``record`` (for delete and expire
    its value is empty and its version the one removed)."""

    __slots__ = ("type", "shard", "revision", "seq", "record")

    def __init__(self, e):
        self.type = _EVENT_TYPES.get(e.type, "unknown")
        self.shard = e.shard
        self.revision = e.revision
        self.seq = e.seq
        self.record = Record(e.record)

    @property
    def key(self):
        return self.record.key

    @property
    def value(self):
        return self.record.value

    @property
    def version(self):
        return self.record.version

    def __repr__(self):
        return "Event(%s %r v%d rev %d.%d)" % (
            self.type, self.key, self.version, self.revision, self.seq)


class Watch(_Closing):
    """Events of a key or a prefix, in revision order per shard, each once.
    ``next(timeout)`` returns a list (empty when the time ran out);
    iterating yields events for ever. ``token`` resumes a later watch
    exactly after the last event returned. A COMPACTED answer raises
    CompactedError; the watch has then moved on to the shard's current
    revision: re-read, and call next again. Close it (or use ``with``)."""

    def __init__(self, client, key, prefix, after_rev, resume_token, ns):
        self.client = client
        self._w = ctypes.c_void_p()
        opts = _WatchOpts(prefix, -1 if after_rev is None else after_rev,
                          None if resume_token is None
                          else resume_token.encode())
        res = _Result()
        rv = _lib.mc_watch_open(client._handle(), client._ns(ns), _key(key),
                                ctypes.byref(opts), ctypes.byref(self._w),
                                ctypes.byref(res))
        if rv != 0:
            _raise(rv, res)

    def next(self, timeout=30.0):
        """The events that arrive within ``timeout`` seconds (at least one,
        unless the time runs out)."""
        if not self._w:
            raise InvalidArgumentError("the watch is closed")
        out = _P(_Event)()
        n = ctypes.c_size_t()
        res = _Result()
        rv = _lib.mc_watch_next(self._w, _seconds_ms(timeout),
                                ctypes.byref(out), ctypes.byref(n),
                                ctypes.byref(res))
        if rv != 0:
            _raise(rv, res)
        try:
            return [Event(out[i]) for i in range(n.value)]
        finally:
            _lib.mc_events_free(out, n.value)

    def __iter__(self):
        while True:
            for e in self.next():
                yield e

    @property
    def token(self):
        """Where this watch stands: pass it as resume_token to go on."""
        return _lib.mc_watch_token(self._w).decode()

    def close(self):
        if self._w:
            _lib.mc_watch_close(self._w)
            self._w = ctypes.c_void_p()



# Transaction parts: compares and operations, as tuples the Client packs.
_CMP_OPS = {"==": 0, "!=": 1, "<": 2, ">": 3}


def exists(key):
    """Compare: ``key`` exists."""
    return (1, key, 0, 0, None)


def missing(key):
    """Compare: ``key`` does not exist."""
    return (2, key, 0, 0, None)


def version_is(key, op, version):
    """Compare: the version of ``key`` (0 when missing) ``op`` ``version``,
    op one of "==", "!=", "<", ">"."""
    return (3, key, _CMP_OPS[op], version, None)


def value_is(key, op, value):
    """Compare: the value of ``key`` == or != ``value`` (false when the key
    is missing)."""
    if op not in ("==", "!="):
        raise InvalidArgumentError("a value compares with == or !=")
    return (4, key, _CMP_OPS[op], 0, _bytes(value))


def put_op(key, value, tier=None, ttl=None):
    """Operation: store ``value`` at ``key``."""
    return (1, key, _bytes(value), tier, ttl)


def delete_op(key):
    """Operation: delete ``key`` (its result says NOT_FOUND if missing)."""
    return (2, key, None, None, None)


def get_op(key):
    """Operation: read ``key`` as of that point of the transaction."""
    return (3, key, None, None, None)


class TxnResult:
    """``succeeded``: the compares held (the ``then`` branch ran);
    ``revision``: the transaction's revision; ``results``: one dict per
    operation of the branch that ran: {"type", "ok", "version", "record"}
    (record: a get's Record, or None)."""

    __slots__ = ("succeeded", "revision", "results")

    def __init__(self, t):
        self.succeeded = t.succeeded
        self.revision = t.revision
        names = {1: "put", 2: "delete", 3: "get"}
        self.results = []
        for i in range(t.n_results):
            r = t.results[i]
            found = r.type == 3 and r.code == 0
            self.results.append({
                "type": names.get(r.type, "unknown"),
                "ok": r.code == 0,
                "code": _CODES[r.code] if 0 <= r.code < len(_CODES)
                else "INTERNAL",
                "version": r.version,
                "record": Record(r.record) if found else None,
            })

    def __repr__(self):
        return "TxnResult(succeeded=%s, revision=%d, results=%r)" % (
            self.succeeded, self.revision, self.results)


class Workflow:
    """A sequence of steps whose progress survives the worker: after each
    step, its result and the step counter are stored in one record
    (``workflow/NAME``, JSON) with a CAS on the record's version, so a
    worker that restarts resumes after the last completed step, and two
    workers racing on one workflow never both complete the same step.

        wf = mc.workflow("ingest-42")
        results = wf.run([fetch, parse, index])   # each step: fn(results)

    A step is a callable taking the list of earlier results (JSON values)
    and returning its own (a JSON value). A step that ran but whose
    checkpoint did not land (the worker died in between) runs again on
    resume: make steps idempotent, as with any at-least-once executor."""

    def __init__(self, client, name, ns=None, prefix="workflow/"):
        self.client = client
        self.key = prefix + name
        self.ns = ns

    def state(self):
        """(completed steps, results, version of the record)."""
        rec = self.client.get_or_none(self.key, ns=self.ns)
        if rec is None:
            return 0, [], 0
        st = rec.json()
        return st["completed"], st["results"], rec.version

    def run(self, steps):
        """Run the steps not completed yet; return every step's result.
        Raises ConflictError when another worker checkpointed the same
        step first (its result stands; call run again to go on)."""
        completed, results, version = self.state()
        for i in range(completed, len(steps)):
            result = steps[i](list(results))
            results.append(result)
            body = json.dumps({"completed": i + 1, "results": results})
            w = self.client.put(self.key, body, expect_version=version,
                                tier="long", ns=self.ns)
            version = w.version
        return results
