"""`local` (the default): every process of this machine shares the state through files in one directory.

Directory: `IBKR_SDK_STATE_DIR`, else a per-user cache directory (`~/.cache/ibkr_sdk/coordination`,
`~/Library/Caches/ibkr_sdk/coordination` on macOS), created owner-only. The cache directory rather than
`$XDG_RUNTIME_DIR`, which cron jobs and services do not get: every process of the user must find the same files.

- Pacing: one memory-mapped file per server and set of limits, updated under `flock` in critical sections of a few
  microseconds. Two copies of the state alternate (the newer one is switched in by one aligned write), each with a
  CRC: a process killed mid-update leaves the previous copy valid, and a damaged file is detected, never guessed.
  Times are the machine's monotonic clock; state from before a reboot (or a suspend) is dropped.
- In-flight slots and leases (the order flow) are `flock`s on their own files: the kernel frees the lock of a
  killed process at once.
- Values (the live-orders snapshot, markers) are small files read and written under `flock`.

POSIX only (`fcntl`): on Windows `backend_for` falls back to `process` with a warning.
"""

from __future__ import annotations

import array
import errno
import hashlib
import json
import logging
import mmap
import os
import random
import re
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import CoordinationError
from .base import (
    SETTLE_DELAY,
    Backend,
    Grant,
    Lease,
    Limits,
    PacingStore,
    Wait,
    WindowSpec,
    WindowState,
    holder_info,
    new_id,
    new_token,
    settled_time,
)

if sys.platform != "win32":
    import fcntl

logger = logging.getLogger("ibkr_sdk")

_MAGIC = b"IBKP"
_VERSION = 1
_HEADER = struct.Struct("<4sIIId")  # magic, version, active copy (0 or 1), unused, boot time estimate
_COPY = struct.Struct("<QII")  # sequence number, number of doubles, CRC-32 of them
_COPY_BYTES = 64 * 1024
_FIRST_COPY = 64
_FILE_BYTES = _FIRST_COPY + 2 * _COPY_BYTES
_MAX_DOUBLES = (_COPY_BYTES - _COPY.size) // 8
_BOOT_TOLERANCE = 60.0  # seconds the boot-time estimate may drift (clock adjustments) before state is dropped
_VALUE_HEAD = struct.Struct("<ddd")  # boot, dated, expires (monotonic)


def default_state_dir() -> Path:
    from ..env import env_str

    explicit = env_str("STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    home = Path.home()
    base = home / "Library" / "Caches" if sys.platform == "darwin" else home / ".cache"
    return base / "ibkr_sdk" / "coordination"


def _boot() -> float:
    """When this machine's monotonic clock started, by the wall clock: monotonic readings of another boot (or from
    before a suspend, during which the monotonic clock stands still) are not comparable with ours."""
    return time.time() - time.monotonic()


def file_name(key: str, suffix: str) -> str:
    """A readable, safe file name for a key (host:port, account), with a hash against collisions."""
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', key)[:80]}-{digest}{suffix}"


class LocalPacingStore(PacingStore):
    def __init__(self, path: Path, limits: Limits) -> None:
        self.limits = limits
        self.path = path
        self._index = {w.name: float(i) for i, w in enumerate(limits.windows)}
        self._specs: dict[tuple[str, ...], tuple[WindowSpec, ...]] = {}
        self._mutex = threading.Lock()  # flock does not exclude the threads of one process from each other
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._seq = -1
        self._state = WindowState()
        self._slot_fds: dict[str, list[int]] = {}
        self._slot_free: dict[str, list[int]] = {}
        self._pending: list[tuple[int, tuple[str, ...], float | None, float, float]] = []
        self._flusher: threading.Thread | None = None
        self._wake = threading.Event()
        self._pid = os.getpid()
        self._open()

    def _open(self) -> None:
        path = self.path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                if os.fstat(fd).st_size < _FILE_BYTES:
                    with self._flock(fd):
                        if os.fstat(fd).st_size < _FILE_BYTES:
                            os.ftruncate(fd, _FILE_BYTES)
                self._map = mmap.mmap(fd, _FILE_BYTES)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            for slot in self.limits.slots:
                self._slot_fds[slot.name] = [
                    os.open(f"{path}.{slot.name}.{i}", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
                    for i in range(slot.limit)
                ]
                self._slot_free[slot.name] = list(range(slot.limit))
        except OSError as exc:
            self.close()
            raise CoordinationError(f"cannot use the pacing state file {path}: {exc}", store=str(path)) from exc

    def _after_fork(self) -> None:
        """In a forked child: the inherited descriptors share their locks with the parent, so they would not
        exclude it. Open our own (closing the copies releases nothing of the parent's)."""
        self._pid = os.getpid()
        self._mutex = threading.Lock()
        self._wake = threading.Event()
        self._flusher = None
        self._pending = []
        self._seq = -1
        if self._map is not None:
            self._map.close()
            self._map = None
        for fd in [self._fd, *(fd for fds in self._slot_fds.values() for fd in fds)]:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = -1
        self._slot_fds, self._slot_free = {}, {}
        try:
            self._open()
        except CoordinationError as exc:
            logger.warning("coordination: reopening %s after fork failed: %s", self.path, exc)

    @staticmethod
    @contextmanager
    def _flock(fd: int) -> Iterator[None]:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _corrupt(self, why: str) -> CoordinationError:
        return CoordinationError(
            f"the pacing state file {self.path} is corrupt ({why}); stop the processes using it and delete it",
            store=str(self.path),
        )

    def _load(self) -> WindowState:
        """The current state (caller holds the locks). Our own last write is reused without decoding."""
        m = self._map
        assert m is not None
        magic, version, active, _, boot = _HEADER.unpack_from(m, 0)
        if magic == b"\0\0\0\0":
            return self._reset("")  # a new file
        if magic != _MAGIC or version != _VERSION or active not in (0, 1):
            raise self._corrupt("unknown header")
        if abs(boot - _boot()) > _BOOT_TOLERANCE:
            return self._reset("the machine restarted or resumed since it was written")
        offset = _FIRST_COPY + active * _COPY_BYTES
        seq, count, crc = _COPY.unpack_from(m, offset)
        if seq == self._seq:
            return self._state
        if count > _MAX_DOUBLES:
            raise self._corrupt("length out of range")
        raw = m[offset + _COPY.size : offset + _COPY.size + count * 8]
        if zlib.crc32(raw) != crc:
            raise self._corrupt("checksum mismatch")
        values = array.array("d")
        values.frombytes(raw)
        self._state, self._seq = self._decode(values), seq
        return self._state

    def _decode(self, values: array.array[float]) -> WindowState:
        """[pause, number of windows, then per window: its index in the limits, its number of entries, the
        entries' four numbers each]."""
        try:
            state = WindowState(pause=values[0])
            names = self.limits.windows
            i = 2
            for _ in range(int(values[1])):
                index, n = int(values[i]), int(values[i + 1])
                if n < 0 or i + 2 + 4 * n > len(values):
                    raise ValueError
                flat = values[i + 2 : i + 2 + 4 * n]
                state.windows[names[index].name] = [list(flat[j : j + 4]) for j in range(0, 4 * n, 4)]
                i += 2 + 4 * n
        except (IndexError, ValueError):
            raise self._corrupt("entries do not match the limits") from None
        return state

    def _reset(self, why: str) -> WindowState:
        if why:
            logger.info("coordination: pacing state %s dropped: %s", self.path, why)
        self._state, self._seq = WindowState(), random.getrandbits(48)  # no process's cached copy matches it
        m = self._map
        assert m is not None
        _COPY.pack_into(m, _FIRST_COPY, 0, 0, 0)
        _HEADER.pack_into(m, 0, b"\0\0\0\0", _VERSION, 0, 0, _boot())
        self._save(self._state)
        return self._state

    def _save(self, state: WindowState) -> None:
        flat = [state.pause, 0.0]
        count = 0
        for name, entries in state.windows.items():
            if entries:
                flat += (self._index[name], len(entries))
                for entry in entries:
                    flat += entry
                count += 1
        flat[1] = count
        values = array.array("d", flat)
        if len(values) > _MAX_DOUBLES:
            raise CoordinationError(f"the pacing state file {self.path} is full", store=str(self.path))
        m = self._map
        assert m is not None
        active = _HEADER.unpack_from(m, 0)[2] if m[0:4] == _MAGIC else 1
        target = 1 - active if active in (0, 1) else 0
        raw = values.tobytes()
        offset = _FIRST_COPY + target * _COPY_BYTES
        seq = self._seq + 1
        m[offset + _COPY.size : offset + _COPY.size + len(raw)] = raw
        _COPY.pack_into(m, offset, seq, len(values), zlib.crc32(raw))
        if m[0:4] != _MAGIC:
            _HEADER.pack_into(m, 0, _MAGIC, _VERSION, target, 0, _HEADER.unpack_from(m, 0)[4])
        else:
            struct.pack_into("<I", m, 8, target)  # one aligned write switches to the new copy
        self._state, self._seq = state, seq

    def _take_slot(self, name: str) -> int | None:
        free = self._slot_free[name]
        for _ in range(len(free)):
            index = free.pop(0)
            try:
                fcntl.flock(self._slot_fds[name][index], fcntl.LOCK_EX | fcntl.LOCK_NB)
                return index
            except BlockingIOError:
                free.append(index)  # held by another process
        return None

    def _free_slot(self, name: str, index: int) -> None:
        fcntl.flock(self._slot_fds[name][index], fcntl.LOCK_UN)
        self._slot_free[name].append(index)

    def _settle_pending(self, state: WindowState, now: float) -> bool:
        """Apply the releases waiting in `_pending` (caller holds the locks); True when an entry changed."""
        changed = False
        cap = self.limits.cap
        for grant_id, names, sent, answered, owd in self._pending:
            sent_ago = None if sent is None else now - sent

            def counted(
                granted: float, sent_ago: float | None = sent_ago, answered: float = answered, owd: float = owd
            ) -> float:
                return settled_time(now, granted, sent_ago, now - answered, owd, cap)

            changed = state.settle(grant_id, names, counted) or changed
        self._pending.clear()
        return changed

    def try_acquire(self, windows: tuple[str, ...], slot: str | None, owd: float) -> Grant | Wait:
        if self._pid != os.getpid():
            self._after_fork()
        specs = self._specs.get(windows)
        if specs is None:
            specs = self._specs[windows] = tuple(w for w in self.limits.windows if w.name in windows)
        try:
            with self._mutex:
                index: int | None = None
                if slot is not None and slot in self._slot_fds:
                    index = self._take_slot(slot)
                    if index is None:
                        return Wait(1.0, slot, exact=False)
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX)
                    try:
                        state = self._load()
                        now = time.monotonic()
                        changed = self._settle_pending(state, now) if self._pending else False
                        grant_id = new_id()
                        wait, reason, exact = state.acquire(specs, now, self.limits.cap, grant_id, owd)
                        if wait <= 0 or changed:
                            self._save(state)
                    finally:
                        fcntl.flock(self._fd, fcntl.LOCK_UN)
                except BaseException:
                    if index is not None:
                        self._free_slot(slot, index)  # type: ignore[arg-type]
                    raise
                if wait > 0:
                    if index is not None:
                        self._free_slot(slot, index)  # type: ignore[arg-type]
                    return Wait(wait, reason, exact)
                return Grant(
                    grant_id, tuple(w.name for w in specs), slot if index is not None else None, now, self, index
                )
        except OSError as exc:
            raise CoordinationError(f"the pacing state file {self.path}: {exc}", store=str(self.path)) from exc

    def release(self, grant: Grant, sent_ago: float | None, answered_ago: float, owd: float) -> None:
        """Settle the request's entries. Without an in-flight slot to free, the write waits (at most
        `SETTLE_DELAY`) for this process's next request to carry it: one locked update per request, not two.
        Until then the entry counts as in flight, the safe side."""
        if self._pid != os.getpid():
            return  # a grant of the parent process
        now = time.monotonic()
        item = (grant.id, grant.windows, None if sent_ago is None else now - sent_ago, now - answered_ago, owd)
        if grant.slot is None:
            with self._mutex:
                self._pending.append(item)
                if self._flusher is None or not self._flusher.is_alive():
                    self._flusher = threading.Thread(target=self._flush_loop, name="ibkr_sdk-pacing-flush", daemon=True)
                    self._flusher.start()
            self._wake.set()
            return
        with self._mutex:
            self._pending.append(item)
            self._flush_locked(lambda: self._free_slot(grant.slot, int(grant.handle)))  # type: ignore[arg-type]

    def _flush_locked(self, then: Callable[[], None] | None = None) -> None:
        """Write the pending releases (caller holds `_mutex`); `then` runs in any case (freeing a slot)."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                state = self._load()
                if self._settle_pending(state, time.monotonic()):
                    self._save(state)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError as exc:
            raise CoordinationError(f"the pacing state file {self.path}: {exc}", store=str(self.path)) from exc
        finally:
            if then is not None:
                then()

    def _flush_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(SETTLE_DELAY)  # this process's next request may carry them
            try:
                with self._mutex:
                    if self._pending and self._map is not None:
                        self._flush_locked()
            except CoordinationError as exc:  # the entries stay in flight: others wait a little longer
                logger.warning("coordination: settling pacing entries failed: %s", exc)

    def pause(self, seconds: float) -> None:
        if self._pid != os.getpid():
            self._after_fork()
        try:
            with self._mutex, self._flock(self._fd):
                state = self._load()
                state.extend_pause(time.monotonic() + seconds)
                self._save(state)
        except OSError as exc:
            raise CoordinationError(f"the pacing state file {self.path}: {exc}", store=str(self.path)) from exc

    def describe(self) -> dict[str, Any]:
        if self._pid != os.getpid():
            self._after_fork()
        with self._mutex:
            if self._pending:
                self._flush_locked()
        with self._mutex, self._flock(self._fd):
            state = self._load()
            now = time.monotonic()
            windows = state.describe(self.limits, now)
            pause = state.pause - now
        held: dict[str, int] = {}
        for name, fds in self._slot_fds.items():
            held[name] = 0
            for fd in fds:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    fcntl.flock(fd, fcntl.LOCK_UN)
                except BlockingIOError:
                    held[name] += 1
        return {"windows": windows, "in_flight": held, "pause_left": round(max(0.0, pause), 3), "file": str(self.path)}

    def close(self) -> None:
        with self._mutex:
            if self._pending and self._map is not None:
                try:
                    self._flush_locked()
                except CoordinationError:
                    pass
        if self._map is not None:
            self._map.close()
            self._map = None
        for fd in [self._fd, *(fd for fds in self._slot_fds.values() for fd in fds)]:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = -1
        self._slot_fds.clear()


class LocalLease(Lease):
    """An exclusive `flock` on the lease's file; the holder's host, pid and start are written into it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.Lock()
        self._fd = -1
        self._token: str | None = None
        self._pid = os.getpid()

    def _after_fork(self) -> None:
        """In a forked child the parent's lease is not ours: forget it (without unlocking the parent's lock)."""
        self._pid = os.getpid()
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd, self._token, self._mutex = -1, None, threading.Lock()

    def _error(self, exc: OSError) -> CoordinationError:
        return CoordinationError(f"cannot use the lock file {self.path}: {exc}", store=str(self.path))

    def try_acquire(self, seconds: float) -> str | None:
        if self._pid != os.getpid():
            self._after_fork()
        if not self._mutex.acquire(blocking=False):
            return None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            self._mutex.release()
            raise self._error(exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self._mutex.release()
            return None
        except OSError as exc:
            os.close(fd)
            self._mutex.release()
            raise self._error(exc) from exc
        token = new_token()
        try:
            info = json.dumps(holder_info(token)).encode()
            os.pwrite(fd, info, 0)
            os.ftruncate(fd, len(info))
        except OSError:
            pass  # the lock holds without the note
        self._fd, self._token = fd, token
        return token

    def renew(self, token: str, seconds: float) -> bool:
        return self._token == token  # the kernel holds it for as long as the process lives

    def release(self, token: str) -> None:
        if self._token != token:
            return
        fd, self._fd, self._token = self._fd, -1, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the descriptor releases the flock
        self._mutex.release()

    def holder(self) -> dict[str, Any] | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(exc) from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None  # nobody holds it
            except BlockingIOError:
                pass
            data = os.pread(fd, 4096, 0)
        finally:
            os.close(fd)
        try:
            info = json.loads(data)
        except ValueError:
            info = None
        return info if isinstance(info, dict) else {"token": "?"}


class LocalBackend(Backend):
    name = "local"

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_state_dir()
        self.store = str(self.directory)
        self._lock = threading.Lock()
        self._leases: dict[str, LocalLease] = {}
        self._ready = False

    def _dir(self) -> Path:
        """The directory, created owner-only on first use; one owned by someone else is refused."""
        if self._ready:
            return self.directory
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.directory.stat()
        except OSError as exc:
            raise CoordinationError(
                f"cannot use the coordination directory {self.directory}: {exc}", store=self.store
            ) from exc
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise CoordinationError(
                f"the coordination directory {self.directory} belongs to another user; set IBKR_SDK_STATE_DIR to a "
                "directory of your own",
                store=self.store,
            )
        self._ready = True
        return self.directory

    def pacing(self, key: str, limits: Limits) -> PacingStore:
        return LocalPacingStore(self._dir() / file_name(f"{key}-{limits.fingerprint()}", ".pacing"), limits)

    def lease(self, key: str) -> Lease:
        with self._lock:
            lease = self._leases.get(key)
            if lease is None:
                lease = self._leases[key] = LocalLease(self._dir() / file_name(key, ".lock"))
            return lease

    def _value_path(self, key: str) -> Path:
        return self._dir() / file_name(key, ".value")

    def _error(self, path: Path, exc: OSError) -> CoordinationError:
        return CoordinationError(f"cannot use {path}: {exc}", store=self.store)

    def get(self, key: str) -> tuple[bytes, float] | None:
        path = self._value_path(key)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            data = b""
            while chunk := os.read(fd, 1 << 20):
                data += chunk
        except OSError as exc:
            raise self._error(path, exc) from exc
        finally:
            os.close(fd)
        if len(data) < _VALUE_HEAD.size:
            return None
        boot, dated, expires = _VALUE_HEAD.unpack_from(data, 0)
        now = time.monotonic()
        if abs(boot - _boot()) > _BOOT_TOLERANCE or expires <= now:
            return None
        return data[_VALUE_HEAD.size :], now - dated

    def _write(self, key: str, data: bytes, ttl: float, age: float, only_if_absent: bool) -> bool:
        path = self._value_path(key)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            raise self._error(path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            now = time.monotonic()
            if only_if_absent:
                head = os.pread(fd, _VALUE_HEAD.size, 0)
                if len(head) == _VALUE_HEAD.size:
                    boot, _, expires = _VALUE_HEAD.unpack(head)
                    if abs(boot - _boot()) <= _BOOT_TOLERANCE and expires > now:
                        return False
            payload = _VALUE_HEAD.pack(_boot(), now - age, now + ttl) + data
            os.pwrite(fd, payload, 0)
            os.ftruncate(fd, len(payload))
            return True
        except OSError as exc:
            raise self._error(path, exc) from exc
        finally:
            os.close(fd)

    def put(self, key: str, data: bytes, ttl: float, age: float = 0.0) -> None:
        self._write(key, data, ttl, age, only_if_absent=False)

    def claim(self, key: str, ttl: float) -> bool:
        return self._write(key, b"", ttl, 0.0, only_if_absent=True)

    def delete(self, key: str) -> None:
        path = self._value_path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise self._error(path, exc) from exc
