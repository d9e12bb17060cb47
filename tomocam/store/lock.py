"""One writer per store: a lock file inside the store, taken before the first write and released at the end.

The lock is a small JSON file (:data:`LOCK_NAME`) that names its holder: host, process id, SLURM job id (and
restart count), start time and command. It is created with ``O_CREAT | O_EXCL``, which is atomic on local
filesystems and on NFS v3+ and the parallel filesystems clusters use, so of two runs started at once exactly one
gets it. The other refuses with :class:`tomocam.errors.StoreLocked`, one line naming the holder.

A lock whose holder is gone is taken over with a warning: the holder ran on this host and its process no longer
exists, or it ran in a SLURM job that SLURM no longer lists as pending or running (asked through the
``job_running`` given, :func:`tomocam.deploy.slurm.job_running`), or in an earlier run of this same SLURM job
before it was requeued (SLURM starts a requeued job again only once every process of its previous run has
ended). A holder on another host without a SLURM job cannot be checked from here: the message says which file to
remove once that run is known to be gone. Two runs that find the same stale lock at once take turns through a
second, short-lived file (``<lock>.break``), so that only one of them removes it.

Use it as a context manager around everything that writes the store (a dataset run takes one per tomogram)::

    with StoreLock("/data/t.zarr", command="tomocam explain ...", job_running=job_running):
        ...  # create, compute, finalize
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from tomocam.errors import StoreLocked

#: The lock file's name inside the store folder.
LOCK_NAME = ".tomocam.lock"

#: The files of the lock (the lock, and the one a stale lock's taker holds a moment): not part of the store.
LOCK_FILES = frozenset({LOCK_NAME, LOCK_NAME + ".break"})

# zarr warns about every file in a group that is not a zarr node when it lists the group's members (as the
# completion check and the reader do); the lock is such a file on purpose, so that warning is not shown for it.
warnings.filterwarnings("ignore", message=r"Object at \.tomocam\.lock(\.break)? is not recognized")

#: Seconds after which a half-written lock (empty or not JSON: its writer died or the disk filled while writing
#: it) or a leftover ``.break`` file counts as stale.
UNREADABLE_STALE_SECONDS = 60.0


@dataclass(frozen=True)
class Holder:
    """Who holds a store's lock."""

    host: str
    pid: int
    started: str  # ISO 8601 time, UTC
    slurm_job: str | None = None
    slurm_restart: int = 0
    command: str = ""
    token: str = ""  # unique per lock taken: a release removes only its own lock

    @classmethod
    def this_process(cls, command: str = "") -> Holder:
        """The holder this process would be."""
        return cls(
            host=socket.gethostname(),
            pid=os.getpid(),
            started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            slurm_job=os.environ.get("SLURM_JOB_ID") or None,
            slurm_restart=int(os.environ.get("SLURM_RESTART_COUNT") or 0),
            command=command,
            token=uuid.uuid4().hex,
        )

    def describe(self) -> str:
        """``pid 123 on host h (SLURM job 456), started 2026-12-07T03:50:00+00:00``."""
        job = f" (SLURM job {self.slurm_job})" if self.slurm_job else ""
        return f"pid {self.pid} on host {self.host}{job}, started {self.started}"


def read_holder(lock: Path) -> Holder | None:
    """The holder written in ``lock``; None when it is missing, empty or not a holder (half written)."""
    try:
        data = json.loads(lock.read_text())
        return Holder(**data)
    except (OSError, ValueError, TypeError):
        return None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


#: Whether SLURM still has a job pending or running (True/False), or None when it cannot tell: the caller passes
#: :func:`tomocam.deploy.slurm.job_running` (the store's room does not import the deploy room).
JobRunning = Callable[[str], "bool | None"]


def _unknown(job_id: str) -> bool | None:  # noqa: ARG001
    return None


def why_stale(holder: Holder | None, lock: Path, me: Holder, job_running: JobRunning = _unknown) -> str | None:
    """Why ``holder`` no longer holds ``lock`` (a sentence for the warning), or None while it may still run;
    ``job_running`` tells whether a SLURM job still runs."""
    if holder is None:
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return "it was removed"
        return f"it is unreadable and {age:.0f} s old" if age > UNREADABLE_STALE_SECONDS else None
    if holder.host == me.host and holder.pid != me.pid and not _process_exists(holder.pid):
        return f"process {holder.pid} no longer exists on {holder.host}"
    if holder.slurm_job:
        if holder.slurm_job == me.slurm_job and holder.slurm_restart < me.slurm_restart:
            return f"SLURM job {holder.slurm_job} has been requeued since"
        if holder.slurm_job != me.slurm_job and job_running(holder.slurm_job) is False:
            return f"SLURM job {holder.slurm_job} no longer runs"
    return None


class StoreLock:
    """The writer lock of the store at ``store`` (its folder is made if missing, and removed again at release if
    the lock was all it held). :meth:`acquire` and :meth:`release`, or use it as a context manager.
    ``command`` is recorded for the user; ``job_running`` asks SLURM about a holder's job (default: nobody can
    tell, so only a dead process on this host or an earlier run of this requeued job is stale)."""

    def __init__(self, store: str | os.PathLike[str], command: str = "", job_running: JobRunning = _unknown) -> None:
        self.store = Path(store).expanduser().absolute()
        self.path = self.store / LOCK_NAME
        self.command = command
        self.job_running = job_running
        self.holder: Holder | None = None
        self._made_folder = False

    def acquire(self) -> Holder:
        """Take the lock, taking over a stale one with a warning; :class:`StoreLocked` naming the live holder."""
        me = Holder.this_process(self.command)
        if not self.store.exists():
            self.store.mkdir(parents=True)
            self._made_folder = True
        text = json.dumps(asdict(me), indent=1).encode()
        for _ in range(10):  # each turn either takes the lock, or removes a stale one, or refuses
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over_if_stale(me)
                continue
            try:
                os.write(fd, text)
                os.fsync(fd)
            except OSError:
                os.close(fd)
                self.path.unlink(missing_ok=True)
                raise
            os.close(fd)
            self.holder = me
            return me
        raise StoreLocked(
            f"store '{self.store}' has a writer lock that cannot be read ('{self.path}': a run is starting, or one "
            f"died writing it); try again in a minute, when an unreadable lock counts as stale"
        )

    def _take_over_if_stale(self, me: Holder) -> None:
        holder = read_holder(self.path)
        reason = why_stale(holder, self.path, me, self.job_running)
        if reason is None:
            if holder is None:  # being written this instant by a run starting beside this one: look again
                time.sleep(0.2)
                return
            raise StoreLocked(
                f"store '{self.store}' is being written by another run: {holder.describe()}; wait for it to end "
                f"(or, if it is gone, remove '{self.path}')"
            )
        with self._breaking() as mine:
            if mine and read_holder(self.path) == holder:  # nobody took it over between our two reads
                self.path.unlink(missing_ok=True)
                who = holder.describe() if holder is not None else "an unknown run"
                warnings.warn(f"took over the lock of store '{self.store}' from {who}: {reason}", stacklevel=4)

    @contextlib.contextmanager
    def _breaking(self) -> Iterator[bool]:
        """Hold ``<lock>.break`` while removing a stale lock; yields False when another run holds it now."""
        brk = self.store / (LOCK_NAME + ".break")
        try:
            os.close(os.open(brk, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - brk.stat().st_mtime > UNREADABLE_STALE_SECONDS:
                    brk.unlink()  # its owner died while breaking
            time.sleep(0.1)
            yield False
            return
        try:
            yield True
        finally:
            brk.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock if it is still this one's (a run that took it over meanwhile keeps its own)."""
        if self.holder is None:
            return
        held = read_holder(self.path)
        if held is not None and held.token == self.holder.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.holder = None
        if self._made_folder:
            with contextlib.suppress(OSError):  # not empty: the store was written, and stays
                self.store.rmdir()

    def __enter__(self) -> Holder:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

