"""Warm kernels: a notebook worker started ahead of time, its kernel already running with torch and Lightning
imported, waiting for the next notebook.

Starting a worker and a kernel and importing the training stack takes seconds; a session runs its iterations
one after another, so the executor starts the next iteration's worker while the current one trains (once its
``fit_started`` event arrives) and the next iteration starts in a ready kernel. The standby warms up at the
lowest CPU priority, so it takes only the CPU time training leaves over (multi-threaded training slows down
badly when another process competes for its cores), and gets the normal priority back when it is handed its
notebook. Where priorities cannot be raised again (no ``CAP_SYS_NICE`` or ``RLIMIT_NICE``), standbys are
started at normal priority once training has finished (``fit_finished``) instead. Each kernel runs one notebook
and is then shut down: a warm kernel is a fresh kernel started early, never a reused one, so every iteration
still starts from a clean interpreter.

A standby is used only when it was started for the same kernel name and Python, and with the same values of the
variables a process reads as it starts (``PATH``, ``PYTHONPATH``, ``LD_*``, thread counts,
``CUDA_VISIBLE_DEVICES``, ``CLINAGENT_*``, ...: :func:`startup_variables`); otherwise it is discarded and a new worker starts. Other variables that changed
since the standby started are set in its kernel before the notebook runs, as is the deadline.
``CLINAGENT_WARM_KERNELS=0`` turns standbys off (every notebook then starts its own worker, as papermill would).

Example:
    >>> pool = KernelPool(size=0)   # no standby: every take() starts a worker for immediate use
    >>> pool.size
    0
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from .events import DEADLINE_ENV

__all__ = ["KernelPool", "Standby", "default_pool", "environment_changes", "startup_variables",
           "worker_environment", "WARM_ENV", "IDLE_ENV"]

#: "0" turns standby kernels off
WARM_ENV = "CLINAGENT_WARM_KERNELS"
#: seconds a standby waits for a notebook before it shuts its kernel down (default 600)
IDLE_ENV = "CLINAGENT_WARM_IDLE_S"


def worker_environment() -> dict[str, str]:
    """The environment a worker (and so its kernel) starts with: this process's, unbuffered, headless plots."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    env.pop(DEADLINE_ENV, None)
    return env


#: variables a process reads as it starts (the interpreter, the BLAS and OpenMP runtimes, Jupyter, plotting):
#: a standby started with other values is not used. Variables that libraries set for themselves on import
#: (torch sets ``CUDA_MODULE_LOADING``, others ``KMP_*``) are not here: the kernel's own imports set them too.
STARTUP_NAMES = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH",
                 "PYTHONHOME", "PYTHONHASHSEED", "PYTHONWARNINGS", "LD_LIBRARY_PATH", "LD_PRELOAD",
                 "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
                 "OPENBLAS_L2_SIZE", "CUDA_VISIBLE_DEVICES", "MPLBACKEND", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR",
                 "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")
STARTUP_PREFIXES = ("CLINAGENT_",)


def startup_variables(env: dict[str, str]) -> dict[str, str]:
    """The part of ``env`` that only takes effect when a process starts (imports read it once)."""
    return {k: v for k, v in env.items() if k in STARTUP_NAMES or k.startswith(STARTUP_PREFIXES)}


def environment_changes(old: dict[str, str], new: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """``(set, unset)`` that turn environment ``old`` into ``new``."""
    return {k: v for k, v in new.items() if old.get(k) != v}, sorted(set(old) - set(new))


def _env_key(env: dict[str, str], kernel_name: str) -> str:
    text = json.dumps([sys.executable, kernel_name, sorted(startup_variables(env).items())])
    return hashlib.sha256(text.encode()).hexdigest()


class Standby:
    """One worker process holding one kernel; see :mod:`clinagent_lab.notebooks.worker`."""

    def __init__(self, kernel_name: str, *, idle_s: float | None = None, preload: str | None = None,
                 background: bool = False) -> None:
        self.kernel_name = kernel_name
        self.background = background
        self.env = worker_environment()
        self.key = _env_key(self.env, kernel_name)
        self.folder = Path(tempfile.mkdtemp(prefix="clinagent-kernel-"))
        self.state_path = self.folder / "state.json"
        self.log_path = self.folder / "worker.log"
        idle = idle_s if idle_s is not None else float(os.environ.get(IDLE_ENV, "600"))
        cmd = [sys.executable, "-m", "clinagent_lab.notebooks.worker", str(self.state_path),
               "--kernel", kernel_name, "--idle-s", str(idle)]
        if preload is not None:
            cmd += ["--preload", preload]
        if background:
            cmd += ["--background"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=self.env, cwd=tempfile.gettempdir(),
                                     preexec_fn=_yield_cpu if background else None)
        self.job_sent = False

    # --- state ----------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"state": "starting"}

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def ready(self) -> bool:
        return self.alive and self.state().get("state") == "ready"

    def usable_for(self, kernel_name: str) -> bool:
        return (not self.job_sent and self.alive and self.kernel_name == kernel_name
                and self.key == _env_key(worker_environment(), kernel_name))

    # --- control --------------------------------------------------------------------------------------
    def send(self, job_path: str | Path) -> None:
        """Hand the worker its notebook (a job file); the worker starts it as soon as its kernel is warm.

        A standby that warmed up in the background is first given this process's CPU priority back, so the
        rest of its warm-up runs at full speed; the worker repeats that for a kernel it starts afterwards.
        """
        assert self.proc.stdin is not None
        if self.background:
            self.restore_priority()
        self.job_sent = True
        self.proc.stdin.write(f"{job_path}\n".encode())
        self.proc.stdin.flush()
        self.proc.stdin.close()

    def restore_priority(self) -> bool:
        """Give the worker and its kernel (every thread, and their autogroups) this process's CPU priority.
        False when not permitted."""
        nice, group = current_priority()
        ok = True
        for pid in (self.proc.pid, self.state().get("kernel_pid")):
            if pid:
                ok = _renice(int(pid), nice, group) and ok
        return ok

    def kill(self) -> None:
        """Kill the worker and its kernel (each is in a process group of its own)."""
        pid = self.state().get("kernel_pid")
        for group in (self.proc.pid, pid):
            if group:
                try:
                    os.killpg(int(group), signal.SIGKILL)
                except (ProcessLookupError, PermissionError, OSError):
                    pass
        if self.alive:
            self.proc.kill()
        self.proc.wait()

    def discard(self) -> None:
        """Kill and clean up (a standby nobody will use)."""
        self.kill()
        self.close()

    def close(self) -> None:
        """Release the pipe and the log; once the worker has exited, remove its folder."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if not self._log.closed:
            self._log.close()
        if self.proc.poll() is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def log_text(self) -> bytes:
        try:
            return self.log_path.read_bytes()
        except OSError:
            return b""


#: niceness of a standby while it warms up: its imports take the CPU time training leaves over, so they do
#: not slow the running notebook (OpenMP training threads suffer badly from a competing process)
BACKGROUND_NICE = 19


def _yield_cpu() -> None:  # runs in the child between fork (and setsid) and exec
    os.nice(BACKGROUND_NICE)
    set_autogroup_nice(os.getpid(), BACKGROUND_NICE)


def autogroup_nice(pid: int | str = "self") -> int | None:
    """The niceness of ``pid``'s scheduler autogroup (Linux, one group per session), or None without one.

    With autogroups on, the scheduler shares the CPU between sessions first: a process's own nice value only
    counts against processes of its session, so a standby in a session of its own must lower its group too.
    """
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text()
    except OSError:
        return None
    try:
        return int(text.rsplit("nice", 1)[1])
    except (IndexError, ValueError):
        return None


def set_autogroup_nice(pid: int, value: int) -> bool:
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(value))
        return True
    except OSError:
        return False


#: niceness of a new session's autogroup: what a kernel started for the notebook (in a session of its own) gets
DEFAULT_GROUP_NICE = 0


def current_priority() -> list[int]:
    """``[nice, autogroup nice]`` a standby gets back with its notebook: this process's nice value, and its
    autogroup's niceness, or the neutral :data:`DEFAULT_GROUP_NICE` when this process is in no autogroup (the
    root group, as in a container whose first process never started a session). A kernel runs in a session of
    its own either way, so its group must not stay at the standby's lowest priority."""
    group = autogroup_nice()
    return [os.getpriority(os.PRIO_PROCESS, 0), DEFAULT_GROUP_NICE if group is None else group]


def can_restore_priority() -> bool:
    """Whether this process may raise a process's priority back (needs CAP_SYS_NICE or RLIMIT_NICE)."""
    try:
        import resource  # deferred: POSIX only (the import fails on Windows)

        soft, _ = resource.getrlimit(resource.RLIMIT_NICE)
    except (ImportError, AttributeError, OSError):
        return False
    if os.geteuid() == 0:
        return True
    # RLIMIT_NICE r allows nice values down to 20 - r; the standby must get back to this process's value
    return soft == resource.RLIM_INFINITY or 20 - soft <= os.getpriority(os.PRIO_PROCESS, 0)


def _renice(pid: int, value: int, group: int | None = None) -> bool:
    """Set the nice value of every thread of ``pid`` (and of its autogroup, when ``group`` is given)."""
    tasks = Path(f"/proc/{pid}/task")
    try:
        tids = [int(t) for t in os.listdir(tasks)] if tasks.exists() else [pid]
    except OSError:
        return False
    ok = True
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, value)
        except ProcessLookupError:
            continue
        except PermissionError:
            ok = False
    if group is not None and autogroup_nice(pid) is not None:
        ok = set_autogroup_nice(pid, group) and ok
    return ok


class KernelPool:
    """At most ``size`` standby workers per process, handed out by :meth:`take`, refilled by :meth:`refill`.

    Args:
        size: standbys kept ready (default 1, or 0 when ``CLINAGENT_WARM_KERNELS=0``).
        preload: comma-separated modules a standby's kernel imports (default: the worker's DEFAULT_PRELOAD).
        idle_s: seconds a standby waits for a notebook before it shuts down (default ``CLINAGENT_WARM_IDLE_S``
            or 600).
    """

    def __init__(self, size: int | None = None, *, preload: str | None = None, idle_s: float | None = None) -> None:
        if size is None:
            size = 0 if os.environ.get(WARM_ENV, "1").strip().lower() in ("0", "false", "no", "off") else 1
        self.size = size
        self.preload = preload
        self.idle_s = idle_s
        #: standbys warm up at low priority when their priority can be given back before they run a notebook;
        #: otherwise they are started only once training is over (see :attr:`refill_on`)
        self.background = can_restore_priority()
        self._standbys: list[Standby] = []
        self._lock = threading.Lock()

    @property
    def refill_on(self) -> str:
        """The notebook event at which the executor starts the next standby: ``fit_started`` when standbys
        warm up at low priority (they use what training leaves over), else ``fit_finished`` (no competition with
        training, which multi-threaded CPU kernels handle badly)."""
        return "fit_started" if self.background else "fit_finished"

    def take(self, kernel_name: str) -> tuple[Standby, bool]:
        """A worker for one notebook: a matching standby (``warm=True``) or a new one started now."""
        with self._lock:
            self._prune()
            for standby in self._standbys:
                if standby.usable_for(kernel_name):
                    self._standbys.remove(standby)
                    return standby, True
            stale = [s for s in self._standbys if s.kernel_name == kernel_name]
            for standby in stale:  # started under another environment: of no use any more
                self._standbys.remove(standby)
                standby.discard()
        return self._start(kernel_name), False

    def refill(self, kernel_name: str) -> bool:
        """Start a standby for ``kernel_name`` unless the pool is full or one is ready. True when started."""
        if self.size <= 0:
            return False
        with self._lock:
            self._prune()
            if any(s.usable_for(kernel_name) for s in self._standbys) or len(self._standbys) >= self.size:
                return False
            self._standbys.append(self._start(kernel_name, background=self.background))
            return True

    def _start(self, kernel_name: str, background: bool = False) -> Standby:
        return Standby(kernel_name, idle_s=self.idle_s, preload=self.preload, background=background)

    def close(self) -> None:
        """Shut every standby down (their kernels included)."""
        with self._lock:
            standbys, self._standbys = self._standbys, []
        for standby in standbys:
            standby.discard()

    @property
    def standbys(self) -> list[Standby]:
        with self._lock:
            return list(self._standbys)

    def _prune(self) -> None:
        for standby in [s for s in self._standbys if not s.alive]:
            self._standbys.remove(standby)
            standby.close()


_default: KernelPool | None = None
_default_lock = threading.Lock()


def default_pool() -> KernelPool:
    """The process-wide pool (closed at interpreter exit)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = KernelPool()
            atexit.register(_default.close)
        return _default
