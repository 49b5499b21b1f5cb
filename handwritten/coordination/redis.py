"""`redis://` / `rediss://`: a Redis (or Valkey) server shared by the processes of several hosts.

Needs redis-py (`pip install ibkr-cpapi-sdk[redis]`), imported when such a backend is first built.

- Pacing: one document per server and set of limits, changed only by Lua scripts, which run atomically on the
  server and read the server's clock (TIME): hosts need no synchronised clocks. The script applies the same rule as
  `base.WindowState`. In-flight slots are entries with an expiry, renewed while held.
- Leases (the order flow): `SET NX PX` with a TTL, renewed by a daemon thread while held, and released by a
  compare-and-delete script. A dead holder's lease lapses after its TTL (6 s for the order flow).
- A restart of Redis loses the windows. Every script compares the server's `run_id` (read once per connection) with
  the one stored; when it differs, or nothing is stored, the windows are taken as full until they have elapsed
  (and leases and slots are not handed out until their holders had time to renew them). With persistence the same
  holds: the restored run id is the old one.
- Releases of rate-window entries are sent with the next request's script (or by a background thread within a few
  milliseconds), so a request costs one round trip to Redis; until then the entry counts as in flight, which is
  the safe side.

All keys start with `{ibkr_sdk}:` (one hash slot, so the scripts also run on a Redis Cluster) and name the server
(host:port), and for the order flow the account.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import CoordinationError
from .base import (
    NAN,
    POLL,
    SETTLE_DELAY,
    Backend,
    Grant,
    Lease,
    Limits,
    PacingStore,
    Wait,
    WindowState,
    holder_info,
    new_id,
    new_token,
)

logger = logging.getLogger("ibkr_sdk")

PREFIX = "{ibkr_sdk}:"
RUN_KEY = PREFIX + "run"
EPOCH_KEY = PREFIX + "epoch"
SLOT_TTL = 6.0
"""Seconds an in-flight slot outlives its last renewal (a dead holder's slot frees after at most this)."""
RENEW_EVERY = 1.5
"""Seconds between renewals of held slots and leases."""
RESTART_GRACE = RENEW_EVERY + 0.5
"""After a restart of Redis, seconds during which only the holders of slots and leases (renewing them) get them."""
CONNECT_TIMEOUT = 2.0
IO_TIMEOUT = 2.0
SPARES = 3
"""Spare entries asked for with a request that follows another one within `BURST_GAP` seconds: the requests after it
in the burst use them without a round trip to Redis. The script grants them only where every window keeps room for
two more requests, and one not used within `SETTLE_DELAY` (at most half the send cap) is given back. Until then a spare
counts as a request in flight, so it can only delay others a little, never let one through too many."""
BURST_GAP = 0.02
UNUSED = "unused"

_LIB = r"""
local BASE = 1700000000
local function clock()
  local t = redis.call('TIME')
  return (tonumber(t[1]) - BASE) + tonumber(t[2]) / 1000000
end
local function epoch(now, run_id)
  local seen = redis.call('GET', KEYS[2])
  local e = redis.call('GET', KEYS[3])
  if (run_id ~= '' and seen ~= run_id) or not e then
    if run_id ~= '' then redis.call('SET', KEYS[2], run_id) end
    redis.call('SET', KEYS[3], tostring(now))
    return now
  end
  return tonumber(e)
end
local function load_doc(key)
  local raw = redis.call('GET', key)
  if not raw then return {p = 0, w = {}, s = {}} end
  local ok, doc = pcall(cmsgpack.unpack, raw)
  if not ok or type(doc) ~= 'table' or type(doc.p) ~= 'number' or type(doc.w) ~= 'table'
      or type(doc.s) ~= 'table' then
    return nil
  end
  return doc
end
local function settle(doc, now, r, cap)
  for _, name in ipairs(r[2]) do
    local list = doc.w[name] or {}
    for i, e in ipairs(list) do
      if e[4] == r[1] then
        local answered = now - r[4]
        if r[3] == -2 then table.remove(list, i)  -- a spare entry never used: nothing was sent
        elseif r[3] < 0 then e[2] = answered
        else e[2] = math.min(now - r[3] + r[5], answered) end
        break
      end
    end
  end
  if r[6] ~= '' and doc.s[r[6]] then doc.s[r[6]][r[1]] = nil end
end
local function window_wait(doc, name, now, rate, per, cap)
  local entries = doc.w[name]
  if not entries then return 0, 1 end
  local kept, times, exact = {}, {}, 1
  for _, e in ipairs(entries) do
    local t = e[2]
    local flying = (t == false)
    if flying then t = math.min(now, e[1] + cap) + e[3] end
    if now - t < per then
      kept[#kept + 1] = e
      times[#times + 1] = t
      if flying then exact = 0 end
    end
  end
  doc.w[name] = kept
  if #kept < rate then return 0, 1 end
  table.sort(times)
  return times[#times - rate + 1] + per - now, exact
end
"""

# KEYS: doc, run, epoch. ARGV: run_id, releases, grant id, owd, then what is fixed per bucket: cap, grace, doc ttl
# (ms), windows, slot, slot limit, slot ttl, poll; last the ids of spare entries wanted ("" for none, or "id,id").
# Returns {0, wait, reason, exact} or {1, spares granted}.
_ACQUIRE = (
    _LIB
    + r"""
local now = clock()
local ep = epoch(now, ARGV[1])
local doc = load_doc(KEYS[1])
if not doc then return redis.error_reply('IBKR_SDK_CORRUPT ' .. KEYS[1]) end
local cap = tonumber(ARGV[5])
for _, r in ipairs(cjson.decode(ARGV[2])) do settle(doc, now, r, cap) end
local wait, reason, exact = doc.p - now, '<pause>', 1
local windows = cjson.decode(ARGV[8])
for _, w in ipairs(windows) do
  local d, ex = window_wait(doc, w[1], now, w[2], w[3], cap)
  local why = w[1]
  if ep + w[3] - now > d then d, ex, why = ep + w[3] - now, 1, '<restart>' end
  if d > wait then wait, reason, exact = d, why, ex end
end
local slot = ARGV[9]
if slot ~= '' then
  local held = doc.s[slot] or {}
  local n = 0
  for token, expires in pairs(held) do
    if expires <= now then held[token] = nil else n = n + 1 end
  end
  doc.s[slot] = held
  local grace = ep + tonumber(ARGV[6]) - now
  if grace > wait then wait, reason, exact = grace, '<restart>', 1 end
  local poll = tonumber(ARGV[12])
  if n >= tonumber(ARGV[10]) and wait < poll then wait, reason, exact = poll, slot, 0 end
end
if wait > 0 then
  redis.call('SET', KEYS[1], cmsgpack.pack(doc), 'PX', ARGV[7])
  return {0, tostring(wait), reason, exact}
end
local id = ARGV[3]
local owd = tonumber(ARGV[4])
for _, w in ipairs(windows) do
  local list = doc.w[w[1]] or {}
  list[#list + 1] = {now, false, owd, id}
  doc.w[w[1]] = list
end
if slot ~= '' then doc.s[slot][id] = now + tonumber(ARGV[11]) end
-- Spare entries (ARGV[13]: their ids), for the requests that follow this one in a burst: each while every window
-- keeps room for two more requests of other processes (so a window of 3 or less gets none).
local spares = 0
if slot == '' then
  for spare in string.gmatch(ARGV[13], '[^,]+') do
    for _, w in ipairs(windows) do
      if #(doc.w[w[1]] or {}) + 1 > w[2] - 2 then spare = nil break end
    end
    if not spare then break end
    for _, w in ipairs(windows) do
      local list = doc.w[w[1]]
      list[#list + 1] = {now, false, owd, spare}
    end
    spares = spares + 1
  end
end
redis.call('SET', KEYS[1], cmsgpack.pack(doc), 'PX', ARGV[7])
return {1, spares}
"""
)

# KEYS: doc. ARGV: releases, cap, doc ttl (ms).
_RELEASE = (
    _LIB
    + r"""
local now = clock()
local doc = load_doc(KEYS[1])
if not doc then return redis.error_reply('IBKR_SDK_CORRUPT ' .. KEYS[1]) end
local cap = tonumber(ARGV[2])
for _, r in ipairs(cjson.decode(ARGV[1])) do settle(doc, now, r, cap) end
redis.call('SET', KEYS[1], cmsgpack.pack(doc), 'PX', ARGV[3])
return 1
"""
)

# KEYS: doc. ARGV: seconds, doc ttl (ms).
_PAUSE = (
    _LIB
    + r"""
local now = clock()
local doc = load_doc(KEYS[1])
if not doc then return redis.error_reply('IBKR_SDK_CORRUPT ' .. KEYS[1]) end
doc.p = math.max(doc.p, now + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], cmsgpack.pack(doc), 'PX', math.max(tonumber(ARGV[2]), math.ceil(tonumber(ARGV[1]) * 1000)))
return 1
"""
)

# KEYS: doc, run, epoch. ARGV: run_id, grace, doc ttl (ms), items [[slot, token, ttl]]. Returns the tokens lost.
_RENEW_SLOTS = (
    _LIB
    + r"""
local now = clock()
local ep = epoch(now, ARGV[1])
local doc = load_doc(KEYS[1])
if not doc then return redis.error_reply('IBKR_SDK_CORRUPT ' .. KEYS[1]) end
local restarting = now < ep + tonumber(ARGV[2])
local lost = {}
for _, it in ipairs(cjson.decode(ARGV[4])) do
  local held = doc.s[it[1]] or {}
  if held[it[2]] or restarting then
    held[it[2]] = now + it[3]
    doc.s[it[1]] = held
  else
    lost[#lost + 1] = it[2]
  end
end
redis.call('SET', KEYS[1], cmsgpack.pack(doc), 'PX', ARGV[3])
return lost
"""
)

# KEYS: doc, run, epoch. Returns the document, the server's time and the epoch (no writes).
_INSPECT = (
    _LIB
    + r"""
local now = clock()
local doc = load_doc(KEYS[1])
if not doc then return redis.error_reply('IBKR_SDK_CORRUPT ' .. KEYS[1]) end
return {cjson.encode(doc), tostring(now), redis.call('GET', KEYS[3]) or ''}
"""
)

# KEYS: lease, run, epoch. ARGV: run_id, value, ttl (ms), grace.
_LEASE_ACQUIRE = (
    _LIB
    + r"""
local now = clock()
local ep = epoch(now, ARGV[1])
if now < ep + tonumber(ARGV[4]) then return 0 end
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return 0
"""
)

# KEYS: lease, run, epoch. ARGV: run_id, value, ttl (ms).
_LEASE_RENEW = (
    _LIB
    + r"""
local now = clock()
epoch(now, ARGV[1])
local current = redis.call('GET', KEYS[1])
if current == ARGV[2] then redis.call('PEXPIRE', KEYS[1], ARGV[3]) return 1 end
if not current then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end
return 0
"""
)

# KEYS: lease. ARGV: value.
_LEASE_RELEASE = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: value. ARGV: data, age, ttl (ms).
_PUT = (
    _LIB
    + r"""
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', tostring(clock() - tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
)

# KEYS: value. Returns the data and its age.
_GET = (
    _LIB
    + r"""
local v = redis.call('HMGET', KEYS[1], 'v', 'd')
if not v[1] or not v[2] then return false end
return {v[1], tostring(clock() - tonumber(v[2]))}
"""
)


def _unused(gid: int, windows: tuple[str, ...], granted: float) -> list[Any]:
    """The release of a spare entry never used: the script removes it."""
    return [str(gid), list(windows), UNUSED, granted, 0.0, None]


def _sent_ago(sent: float | str | None, now: float) -> float:
    """How a release tells the script when its request was sent: -1 unknown (it counts until its answer), -2 a spare
    entry never used (removed), else seconds ago."""
    if sent is None:
        return -1
    if sent == UNUSED:
        return -2
    return max(0.0, now - float(sent))


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.password is None:
        return re.sub(r":[^:@/]*@", ":***@", url)  # not a URL we can parse: hide anything like a password
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class _Renewer:
    """One daemon thread per backend renewing every held lease and slot at a third of its TTL (at most every
    `RENEW_EVERY` seconds), so one missed renewal still leaves it held."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[Callable[[], bool], float]] = {}
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._pid = os.getpid()

    def add(self, token: str, renew: Callable[[], bool], ttl: float) -> None:
        if self._pid != os.getpid():  # a forked child: the parent's leases are not ours to renew
            self._pid, self._lock, self._items, self._thread = os.getpid(), threading.Lock(), {}, None
        with self._lock:
            self._items[token] = (renew, min(RENEW_EVERY, ttl / 3))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ibkr_sdk-coordination-renewer", daemon=True)
                self._thread.start()
        self._wake.set()

    def remove(self, token: str) -> None:
        with self._lock:
            self._items.pop(token, None)

    def _run(self) -> None:
        due: dict[str, float] = {}
        while True:
            with self._lock:
                items = dict(self._items)
            now = time.monotonic()
            for token in list(due):
                if token not in items:
                    del due[token]
            for token, (renew, every) in items.items():
                if token not in due:
                    due[token] = now + every
                elif due[token] <= now:
                    due[token] = now + every
                    try:
                        if not renew():
                            logger.warning("coordination: a lease was lost (another process took it after it lapsed)")
                            self.remove(token)
                    except Exception as exc:  # the next round retries; the TTL leaves room for one miss
                        logger.warning("coordination: renewing a lease failed: %s", exc)
            self._wake.wait(max(0.01, min(due.values(), default=now + RENEW_EVERY) - time.monotonic()))
            self._wake.clear()


class RedisPacingStore(PacingStore):
    def __init__(self, backend: RedisBackend, key: str, limits: Limits) -> None:
        self.limits = limits
        self._backend = backend
        self._keys = [f"{PREFIX}pacing:{key}:{limits.fingerprint()}", RUN_KEY, EPOCH_KEY]
        longest = max([w.per for w in limits.windows] + [SLOT_TTL])
        self._ttl_ms = str(int((longest + limits.cap + 60) * 1000))
        self._shapes: dict[tuple[tuple[str, ...], str | None], tuple[list[Any], tuple[str, ...], Any]] = {}
        self._pending: list[list[Any]] = []  # releases not sent yet: [id, names, sent_at, answered_at, owd, slot]
        self._spares: dict[tuple[str, ...], list[tuple[int, float]]] = {}  # windows -> [(id, granted at)]
        self._spare_life = min(SETTLE_DELAY, limits.cap / 2)
        self._last_acquire = 0.0
        self._cond = threading.Condition()
        self._flusher: threading.Thread | None = None
        self._flusher_idle = True
        self._slot_tokens: set[str] = set()

    def _take_pending(self, answered_before: float | None = None) -> list[list[Any]]:
        with self._cond:
            if answered_before is None:
                pending, self._pending = self._pending, []
            else:
                pending = [p for p in self._pending if p[3] <= answered_before]
                self._pending = [p for p in self._pending if p[3] > answered_before]
        return pending

    @staticmethod
    def _encode(pending: list[list[Any]]) -> str:
        now = time.monotonic()
        return json.dumps(
            [
                [gid, names, _sent_ago(sent, now), max(0.0, now - answered), owd, slot or ""]
                for gid, names, sent, answered, owd, slot in pending
            ]
        )

    def _request(self, windows: tuple[str, ...], slot: str | None) -> tuple[list[Any], tuple[str, ...], Any]:
        """What does not change between requests of one bucket: the script's fixed arguments (encoded once), the
        window names and the slot."""
        shape = self._shapes.get((windows, slot))
        if shape is None:
            chosen = [w for w in self.limits.windows if w.name in windows]
            limit = self.limits.slot(slot) if slot else None
            fixed = [
                repr(self.limits.cap),
                repr(RESTART_GRACE),
                self._ttl_ms,
                json.dumps([[w.name, w.rate, w.per] for w in chosen]),
                limit.name if limit else "",
                str(limit.limit if limit else 0),
                repr(SLOT_TTL),
                repr(POLL),
            ]
            shape = self._shapes[(windows, slot)] = (fixed, tuple(w.name for w in chosen), limit)
        return shape

    def try_acquire(self, windows: tuple[str, ...], slot: str | None, owd: float) -> Grant | Wait:
        fixed, names, limit = self._request(windows, slot)
        now = time.monotonic()
        if limit is None:
            spare = self._take_spare(windows, now)
            if spare is not None:
                return Grant(spare, names, None, now, self)
        burst = limit is None and now - self._last_acquire < BURST_GAP
        self._last_acquire = now
        spare_ids = [new_id() for _ in range(SPARES)] if burst else []
        grant_id = new_id()
        pending = self._take_pending()
        args = [
            self._backend.run_id,
            self._encode(pending) if pending else "[]",
            str(grant_id),
            repr(owd),
            *fixed,
            ",".join(map(str, spare_ids)),
        ]
        try:
            answer = self._backend.call("acquire", self._keys, args)
        except CoordinationError:
            with self._cond:
                self._pending[:0] = pending  # not applied: send them with the next script
            raise
        if answer[0] == 1:
            if len(answer) > 1 and int(answer[1]):
                self._keep_spares(windows, spare_ids[: int(answer[1])], now)
            grant = Grant(grant_id, names, limit.name if limit else None, time.monotonic(), self)
            if limit is not None:
                token = str(grant_id)
                self._backend.renewer.add(token, lambda: self._renew_slot(limit.name, token), SLOT_TTL)
            return grant
        reason = answer[2].decode() if isinstance(answer[2], bytes) else str(answer[2])
        return Wait(float(answer[1]), reason, exact=bool(answer[3]))

    def _take_spare(self, windows: tuple[str, ...], now: float) -> int | None:
        """A spare entry of these windows still fresh enough to use; stale ones are queued to be given back."""
        with self._cond:
            spares = self._spares.get(windows)
            while spares:
                gid, granted = spares.pop(0)
                if now - granted < self._spare_life:
                    self._last_acquire = now
                    return gid
                self._pending.append(_unused(gid, windows, granted))
        return None

    def _keep_spares(self, windows: tuple[str, ...], ids: list[int], granted: float) -> None:
        with self._cond:
            self._spares.setdefault(windows, []).extend((gid, granted) for gid in ids)
            self._wake_flusher()  # it gives back the ones the burst does not use

    def _give_back_spares(self, before: float) -> None:
        """Queue every spare granted before `before` to be given back (the burst ended without it)."""
        with self._cond:
            for windows, spares in self._spares.items():
                while spares and spares[0][1] < before:
                    gid, granted = spares.pop(0)
                    self._pending.append(_unused(gid, windows, granted))

    def _wake_flusher(self) -> None:
        """Start the flusher, or wake it when it sleeps (callers hold `_cond`)."""
        if self._flusher is None or not self._flusher.is_alive():
            self._flusher = threading.Thread(target=self._flush_loop, name="ibkr_sdk-coordination-flush", daemon=True)
            self._flusher.start()
        if self._flusher_idle:  # while requests keep coming the flusher is awake anyway: no wake-up per request
            self._cond.notify()

    def _renew_slot(self, slot: str, token: str) -> bool:
        items = json.dumps([[slot, token, SLOT_TTL]])
        args = [self._backend.run_id, repr(RESTART_GRACE), self._ttl_ms, items]
        lost = self._backend.call("renew_slots", self._keys, args)
        return not lost

    def release(self, grant: Grant, sent_ago: float | None, answered_ago: float, owd: float) -> None:
        now = time.monotonic()
        sent = None if sent_ago is None else now - sent_ago
        item = [str(grant.id), list(grant.windows), sent, now - answered_ago, owd, grant.slot]
        if grant.slot is not None:
            self._backend.renewer.remove(str(grant.id))
            # An in-flight slot frees at once, with whatever else is pending.
            batch = [*self._take_pending(), item]
            try:
                self._send_releases(batch)
            except CoordinationError:
                with self._cond:
                    self._pending[:0] = batch
                raise
            return
        with self._cond:
            self._pending.append(item)
            self._wake_flusher()

    def _send_releases(self, pending: list[list[Any]]) -> None:
        self._backend.call("release", self._keys[:1], [self._encode(pending), repr(self.limits.cap), self._ttl_ms])

    def _flush_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not any(self._spares.values()):
                    self._flusher_idle = True
                    self._cond.wait()
                self._flusher_idle = False
            time.sleep(SETTLE_DELAY)  # the next request's script may carry them
            self._give_back_spares(before=time.monotonic() - self._spare_life)
            # Only what no request carried for a whole delay; a fresher release waits for the next round.
            pending = self._take_pending(answered_before=time.monotonic() - SETTLE_DELAY)
            if not pending:
                continue
            try:
                self._send_releases(pending)
            except CoordinationError as exc:  # the entries stay in flight, which only delays others a little
                logger.warning("coordination: releasing pacing entries failed: %s", exc)

    def pause(self, seconds: float) -> None:
        self._backend.call("pause", self._keys[:1], [repr(seconds), self._ttl_ms])

    def describe(self) -> dict[str, Any]:
        raw, now_text, epoch_text = self._backend.call("inspect", self._keys, [])
        now = float(now_text)
        state = WindowState()
        in_flight: dict[str, int] = {s.name: 0 for s in self.limits.slots}
        if raw:
            doc = json.loads(raw)
            state.pause = float(doc.get("p", 0))
            for name, entries in (doc.get("w") or {}).items():
                if isinstance(entries, list):
                    state.windows[name] = [
                        [float(e[0]), NAN if e[1] is False else float(e[1]), float(e[2]), 0.0] for e in entries
                    ]
            for name, held in (doc.get("s") or {}).items():
                if isinstance(held, dict):
                    in_flight[name] = sum(1 for expires in held.values() if float(expires) > now)
        restart_left = 0.0
        if epoch_text:
            restart_left = max((float(epoch_text) + w.per - now for w in self.limits.windows), default=0.0)
        return {
            "windows": state.describe(self.limits, now),
            "in_flight": in_flight,
            "pause_left": round(max(0.0, state.pause - now), 3),
            "restart_block_left": round(max(0.0, restart_left), 3),
            "key": self._keys[0],
        }


class RedisLease(Lease):
    def __init__(self, backend: RedisBackend, key: str) -> None:
        self._backend = backend
        self._keys = [f"{PREFIX}lease:{key}", RUN_KEY, EPOCH_KEY]
        self._values: dict[str, str] = {}

    def try_acquire(self, seconds: float) -> str | None:
        token = new_token()
        value = json.dumps(holder_info(token))
        ttl = str(int(seconds * 1000))
        got = self._backend.call("lease_acquire", self._keys, [self._backend.run_id, value, ttl, repr(RESTART_GRACE)])
        if got != 1:
            return None
        self._values[token] = value
        self._backend.renewer.add(token, lambda: self.renew(token, seconds), seconds)
        return token

    def renew(self, token: str, seconds: float) -> bool:
        value = self._values.get(token)
        if value is None:
            return False
        ttl = str(int(seconds * 1000))
        return bool(self._backend.call("lease_renew", self._keys, [self._backend.run_id, value, ttl]) == 1)

    def release(self, token: str) -> None:
        self._backend.renewer.remove(token)
        value = self._values.pop(token, None)
        if value is not None:
            self._backend.call("lease_release", self._keys[:1], [value])

    def holder(self) -> dict[str, Any] | None:
        raw = self._backend.command(lambda c: c.get(self._keys[0]))
        if raw is None:
            return None
        try:
            info = json.loads(raw)
        except ValueError:
            return {"token": "?"}
        return info if isinstance(info, dict) else {"token": "?"}


class RedisBackend(Backend):
    name = "redis"
    io = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.store = safe_url(url)
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise CoordinationError(
                f"coordination {self.store!r} needs redis-py: pip install 'ibkr-cpapi-sdk[redis]'", store=self.store
            ) from exc
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._response_error: type[BaseException] = redis.ResponseError
        self._run_id = ""
        try:
            self._client = redis.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=IO_TIMEOUT,
                retry=Retry(NoBackoff(), 1),  # one reconnect (after a restart of Redis), then a clear error
                redis_connect_func=self._on_connect,
            )
        except (ValueError, *self._redis_errors) as exc:
            raise CoordinationError(f"bad Redis URL {self.store!r}: {exc}", store=self.store) from exc
        sources = {
            "acquire": _ACQUIRE,
            "release": _RELEASE,
            "pause": _PAUSE,
            "renew_slots": _RENEW_SLOTS,
            "inspect": _INSPECT,
            "lease_acquire": _LEASE_ACQUIRE,
            "lease_renew": _LEASE_RENEW,
            "lease_release": _LEASE_RELEASE,
            "put": _PUT,
            "get": _GET,
        }
        self._scripts = {name: self._client.register_script(source) for name, source in sources.items()}
        self._no_script: type[BaseException] = redis.exceptions.NoScriptError
        self._lost: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)
        self.renewer = _Renewer()
        self._lock = threading.Lock()
        self._leases: dict[str, RedisLease] = {}
        # The scripts go over one connection of our own, held for the life of the backend: a connection taken from
        # redis-py's pool for each command is first polled for stray data, which costs more than the script.
        self._conn_lock = threading.Lock()
        self._conn: Any = None
        self._conn_pid = 0

    def _on_connect(self, connection: Any) -> None:
        """Every new connection reads the server's run id: a new one means Redis restarted (see the docstring)."""
        connection.on_connect()
        connection.send_command("INFO", "server")
        info = connection.read_response()
        text = info.decode() if isinstance(info, bytes) else str(info)
        for line in text.splitlines():
            if line.startswith("run_id:"):
                self._run_id = line.split(":", 1)[1].strip()

    @property
    def run_id(self) -> str:
        """The server's run id, read by every new connection. Before the first one it is read now: a script run
        without it would take the first run id it is given as a restart, and hold leases back twice."""
        if not self._run_id:
            try:
                self._client.ping()
            except self._redis_errors:
                pass  # the call that follows raises CoordinationError naming the store
        return self._run_id

    def _error(self, exc: BaseException) -> CoordinationError:
        text = str(exc)
        if "IBKR_SDK_CORRUPT" in text:
            key = text.split("IBKR_SDK_CORRUPT", 1)[1].strip()
            return CoordinationError(
                f"the coordination state in Redis {self.store} is corrupt ({key}); delete that key", store=self.store
            )
        if isinstance(exc, self._response_error):
            return CoordinationError(f"the Redis coordination store {self.store} refused: {exc}", store=self.store)
        return CoordinationError(f"the Redis coordination store {self.store} is unreachable: {exc}", store=self.store)

    def call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return self._evalsha(self._scripts[script], keys, args)
        except self._redis_errors as exc:
            raise self._error(exc) from exc

    def _evalsha(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a script on the backend's own connection: loaded on a NoScriptError (a new or flushed server), and
        sent once more on a new connection when the old one was lost (a restart of Redis), then a clear error."""
        with self._conn_lock:
            if self._conn is None or self._conn_pid != os.getpid():  # a forked child opens its own
                self._conn = self._client.connection_pool.make_connection()
                self._conn_pid = os.getpid()
            conn = self._conn
            reconnected = loaded = False
            while True:
                try:
                    conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
                    return conn.read_response()
                except self._no_script:
                    if loaded:
                        raise
                    conn.send_command("SCRIPT", "LOAD", script.script)
                    conn.read_response()
                    loaded = True
                except self._response_error:
                    raise  # the server answered in full: the connection stays usable
                except self._lost:
                    conn.disconnect()
                    if reconnected:
                        raise
                    reconnected = True
                except BaseException:  # e.g. KeyboardInterrupt mid-read: an answer may still be on its way
                    conn.disconnect()
                    raise

    def command(self, fn: Callable[[Any], Any]) -> Any:
        try:
            return fn(self._client)
        except self._redis_errors as exc:
            raise self._error(exc) from exc

    def pacing(self, key: str, limits: Limits) -> PacingStore:
        return RedisPacingStore(self, key, limits)

    def lease(self, key: str) -> Lease:
        with self._lock:
            lease = self._leases.get(key)
            if lease is None:
                lease = self._leases[key] = RedisLease(self, key)
            return lease

    def get(self, key: str) -> tuple[bytes, float] | None:
        answer = self.call("get", [f"{PREFIX}value:{key}"], [])
        if not answer:
            return None
        return bytes(answer[0]), max(0.0, float(answer[1]))

    def put(self, key: str, data: bytes, ttl: float, age: float = 0.0) -> None:
        self.call("put", [f"{PREFIX}value:{key}"], [data, repr(age), str(max(1, int(ttl * 1000)))])

    def claim(self, key: str, ttl: float) -> bool:
        return bool(self.command(lambda c: c.set(f"{PREFIX}claim:{key}", b"1", nx=True, px=max(1, int(ttl * 1000)))))

    def delete(self, key: str) -> None:
        self.command(lambda c: c.delete(f"{PREFIX}value:{key}", f"{PREFIX}claim:{key}"))
