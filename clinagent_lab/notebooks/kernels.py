"""Warm kernels: a kernel started ahead of its notebook by a jupyter_client kernel manager, with torch and
Lightning already imported, waiting in a pool held by this process.

Starting a kernel and importing the training stack takes seconds; a session runs its iterations one after
another, so the executor starts the next iteration's kernel while the current one runs, and the next iteration
starts in a ready kernel. jupyter_client's ``AsyncKernelManager`` starts, watches and shuts the kernel down
(its kernel exits by itself when this process dies: ipykernel polls its parent); nbclient, through papermill,
runs the notebook on it (:mod:`.papermill_job`). What is ours: the warm-up (the imports run silently, before
the notebook arrives, so execution counts and outputs are as in a fresh kernel) and the standby's CPU priority
(:mod:`.priority`). Each kernel runs one notebook and is then shut down: a warm kernel is a fresh kernel started
early, never a reused one, so every iteration still starts from a clean interpreter.

A standby is used only when it was started for the same kernel name and Python, and with the same values of the
variables a process reads as it starts (``PATH``, ``PYTHONPATH``, ``LD_*``, thread counts,
``CUDA_VISIBLE_DEVICES``, ``CLINAGENT_*``, ...: :func:`startup_variables`); otherwise it is shut down and a new
kernel starts. Other variables that changed since the standby started are set in its kernel before the notebook
runs, as is the deadline. ``CLINAGENT_WARM_KERNELS=0`` turns standbys off (every notebook then starts its own
kernel, as papermill would).

Example:
    >>> pool = KernelPool(size=0)   # no standby: every take() starts a kernel for immediate use
    >>> pool.size
    0
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import os
import queue
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .events import DEADLINE_ENV
from .papermill_job import error_of, run_papermill
from .priority import BACKGROUND_NICE, can_restore_priority, current_priority, renice

__all__ = ["KernelPool", "WarmKernel", "default_pool", "environment_changes", "startup_variables",
           "kernel_environment", "DEFAULT_PRELOAD", "WARM_ENV", "IDLE_ENV"]

#: "0" turns standby kernels off
WARM_ENV = "CLINAGENT_WARM_KERNELS"
#: seconds a standby waits for a notebook before it is shut down (default 600)
IDLE_ENV = "CLINAGENT_WARM_IDLE_S"
#: modules a warm kernel imports before it is handed a notebook (what the templates' first cells import)
DEFAULT_PRELOAD = ("numpy", "pandas", "torch", "lightning", "clinagent_lab.notebooks.runtime",
                   "clinagent_lab.tasks.classification", "clinagent_lab.models.classifier")

#: variables a process reads as it starts (the interpreter, the BLAS and OpenMP runtimes, Jupyter, plotting):
#: a standby started with other values is not used. Variables that libraries set for themselves on import
#: (torch sets ``CUDA_MODULE_LOADING``, others ``KMP_*``) are not here: the kernel's own imports set them too.
STARTUP_NAMES = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH",
                 "PYTHONHOME", "PYTHONHASHSEED", "PYTHONWARNINGS", "LD_LIBRARY_PATH", "LD_PRELOAD",
                 "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
                 "OPENBLAS_L2_SIZE", "CUDA_VISIBLE_DEVICES", "MPLBACKEND", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR",
                 "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")
STARTUP_PREFIXES = ("CLINAGENT_",)
#: folders of this Python's packages: OpenCV's import adds its bundled libraries (``<site-packages>/cv2/../../lib64``)
#: to ``LD_LIBRARY_PATH`` of the process importing it, and a kernel's own import adds them again, so such entries
#: do not tell kernels apart
_PACKAGE_DIRS = tuple({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})


def kernel_environment() -> dict[str, str]:
    """The environment a kernel starts with: this process's, unbuffered, headless plots, no deadline."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    env.pop(DEADLINE_ENV, None)
    return env


def startup_variables(env: dict[str, str]) -> dict[str, str]:
    """The part of ``env`` that only takes effect when a process starts (imports read it once)."""
    out = {k: v for k, v in env.items() if k in STARTUP_NAMES or k.startswith(STARTUP_PREFIXES)}
    if "LD_LIBRARY_PATH" in out:
        paths = [p for p in out.pop("LD_LIBRARY_PATH").split(os.pathsep) if p and not p.startswith(_PACKAGE_DIRS)]
        if paths:
            out["LD_LIBRARY_PATH"] = os.pathsep.join(paths)
    return out


def environment_changes(old: dict[str, str], new: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """``(set, unset)`` that turn environment ``old`` into ``new``."""
    return {k: v for k, v in new.items() if old.get(k) != v}, sorted(set(old) - set(new))


def _env_key(env: dict[str, str], kernel_name: str) -> str:
    text = json.dumps([sys.executable, kernel_name, sorted(startup_variables(env).items())])
    return hashlib.sha256(text.encode()).hexdigest()


def _preload_code(modules: Sequence[str]) -> str:
    lines = ["import importlib as _clinagent_importlib"]
    for name in modules:
        lines.append(f"try:\n    _clinagent_importlib.import_module({name!r})\nexcept Exception:\n    pass")
    return "\n".join([*lines, "del _clinagent_importlib"])


def _job_prelude(job: dict[str, Any]) -> str:
    """The kernel moved to the job's folder, its environment brought up to date and the deadline set."""
    lines = ["import os as _clinagent_os", f"_clinagent_os.chdir({str(job['cwd'])!r})"]
    if job.get("env_set"):
        lines.append(f"_clinagent_os.environ.update({dict(job['env_set'])!r})")
    lines += [f"_clinagent_os.environ.pop({name!r}, None)" for name in job.get("env_unset") or []]
    if job.get("deadline"):
        lines.append(f"_clinagent_os.environ[{DEADLINE_ENV!r}] = {str(job['deadline'])!r}")
    else:
        lines.append(f"_clinagent_os.environ.pop({DEADLINE_ENV!r}, None)")
    return "\n".join([*lines, "del _clinagent_os"])


class WarmKernel:
    """One kernel, started (and its ``preload`` imported) in a thread of its own as soon as this is created.

    Args:
        kernel_name: the kernel spec.
        preload: modules imported silently once the kernel is up.
        background: warm up at the lowest CPU priority (:mod:`.priority`) until handed a notebook.
    """

    def __init__(self, kernel_name: str, *, preload: Sequence[str] = (), background: bool = False) -> None:
        # deferred: jupyter_client and its zmq start-up are needed once a kernel starts, not at server start-up
        from jupyter_client.manager import AsyncKernelManager

        self.kernel_name = kernel_name
        self.background = background
        self.env = kernel_environment()
        self.key = _env_key(self.env, kernel_name)
        self.km = AsyncKernelManager(kernel_name=kernel_name)
        self.preload = list(preload)
        self.taken = False
        self.error: BaseException | None = None
        fd, self.log_path = tempfile.mkstemp(prefix="clinagent-kernel-", suffix=".log")
        self._log = os.fdopen(fd, "wb")
        self._log_text = ""
        self._priority: tuple[int, int] | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._closed = self._down = self._launched = False
        self.timer: threading.Timer | None = None
        threading.Thread(target=self._warm, name=f"clinagent-kernel-{kernel_name}", daemon=True).start()

    # --- state ----------------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        pid = getattr(self.km.provisioner, "pid", None)
        return int(pid) if pid else None

    @property
    def ready(self) -> bool:
        """Started and warmed up (its preload imported)."""
        return self._ready.is_set() and self.error is None and not self._closed

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout) and self.error is None

    @property
    def closed(self) -> bool:
        return self._closed

    def usable_for(self, kernel_name: str) -> bool:
        return (not self.taken and not self._closed and self.error is None and self.kernel_name == kernel_name
                and self.key == _env_key(kernel_environment(), kernel_name))

    @property
    def dead(self) -> bool:
        """Its kernel failed to start, was shut down, or exited by itself (crashed, killed)."""
        if self._closed or self.error is not None:
            return True
        if not (self._ready.is_set() and self.km.has_kernel):
            return False
        from jupyter_core.utils import run_sync  # deferred with jupyter_client (see __init__)

        return not run_sync(self.km.is_alive)()

    def log_text(self) -> str:
        """What the kernel process wrote to its standard output and error (outside the notebook's cells)."""
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return self._log_text

    # --- the kernel's life ----------------------------------------------------------------------------
    def _warm(self) -> None:
        try:
            asyncio.run(self._start())
        except BaseException as exc:  # noqa: BLE001 - reported to whoever is handed this kernel
            self.error = exc
        finally:
            self._ready.set()

    async def _start(self) -> None:
        await self.km.start_kernel(env=self.env, cwd=tempfile.gettempdir(), stdout=self._log,
                                   stderr=subprocess.STDOUT)
        with self._lock:
            # from now on another thread may shut it down; before, only this loop may (the manager's start-up
            # future belongs to it), so a close() during the start is carried out just below
            self._launched = True
            if self.background and self.pid:  # handed over already: the caller's priority, else the lowest
                renice(self.pid, *(self._priority or (BACKGROUND_NICE, BACKGROUND_NICE)))
        if self._closed:  # closed while it started
            if self._claim_shutdown():
                await self.km.shutdown_kernel(now=True)
            return
        if self.preload:
            await self._silently(_preload_code(self.preload))

    async def _silently(self, code: str, timeout_s: float = 300.0) -> dict[str, Any]:
        """Execute ``code`` without history, outputs or an execution count; the reply's content. Awaited in
        slices: a kernel shut down meanwhile (a stop during its warm-up) never replies."""
        kc = self.km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=timeout_s)
            msg_id, deadline = kc.execute(code, silent=True, store_history=False), time.monotonic() + timeout_s
            while True:
                try:
                    reply = await kc.get_shell_msg(timeout=0.5)
                    if reply["parent_header"].get("msg_id") == msg_id:
                        return reply["content"]
                except queue.Empty:
                    if self._closed or not await self.km.is_alive() or time.monotonic() > deadline:
                        raise RuntimeError("the kernel was shut down, or did not reply in time") from None
        finally:
            kc.stop_channels()

    def hand_over(self) -> None:
        """Mark this kernel as taken for one notebook and give it this process's CPU priority."""
        self.taken = True
        if self.timer is not None:
            self.timer.cancel()
        self.raise_priority()

    def raise_priority(self) -> None:
        """Give a kernel warming up in the background this process's CPU priority (now, or once it has a pid)."""
        if self.background and self._priority is None:
            with self._lock:
                self._priority = current_priority()
                if self.pid:
                    renice(self.pid, *self._priority)

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """Run ``job`` (see :func:`~.papermill_job.run_papermill`, plus ``deadline``, ``env_set`` and
        ``env_unset``) once the kernel is warm; ``{"status", "error"}``."""
        self._ready.wait()
        if self._closed:  # stopped before its notebook started
            return {"status": "crash", "error": {"ename": "Stopped", "evalue": "the kernel was shut down before "
                                                 "the notebook started", "cell_index": None}}
        if self.error is not None:
            return {"status": "crash", "error": error_of(self.error)}
        try:
            prelude = asyncio.run(self._silently(_job_prelude(job)))
        except Exception as exc:  # noqa: BLE001 - a kernel that died or was stopped before its notebook
            return {"status": "crash", "error": error_of(exc)}
        if prelude.get("status") != "ok":
            return {"status": "crash", "error": {"ename": prelude.get("ename"), "evalue": prelude.get("evalue"),
                                                 "cell_index": None, "traceback": "could not prepare the kernel"}}
        return run_papermill(job, km=self.km)

    def close(self) -> None:
        """Shut the kernel down now (a stop, a timeout, the end of its notebook); idempotent."""
        with self._lock:
            self._closed = True
        if self.timer is not None:
            self.timer.cancel()
        if self._claim_shutdown():
            # deferred with jupyter_client: run the manager's coroutine from whatever thread stops the kernel
            from jupyter_core.utils import run_sync

            try:
                run_sync(self.km.shutdown_kernel)(now=True)
            except Exception:  # noqa: BLE001 - the kernel may already be gone (killed, crashed)
                pass
        if not self._log.closed:
            self._log.close()
            self._log_text = self.log_text()  # kept for the executor's execution.log
            Path(self.log_path).unlink(missing_ok=True)

    def _claim_shutdown(self) -> bool:
        """True for the one caller that is to shut the started kernel down."""
        with self._lock:
            if self._down or not self._launched:
                return False
            self._down = True
            return True


class KernelPool:
    """At most ``size`` standby kernels, handed out by :meth:`take`, refilled by :meth:`refill`.

    Args:
        size: standbys kept ready (default 1, or 0 when ``CLINAGENT_WARM_KERNELS=0``).
        preload: modules a standby imports, a sequence or comma-separated (default :data:`DEFAULT_PRELOAD`).
        idle_s: seconds a standby waits for a notebook before it is shut down (default ``CLINAGENT_WARM_IDLE_S``
            or 600).
    """

    def __init__(self, size: int | None = None, *, preload: str | Sequence[str] | None = None,
                 idle_s: float | None = None) -> None:
        if size is None:
            size = 0 if os.environ.get(WARM_ENV, "1").strip().lower() in ("0", "false", "no", "off") else 1
        self.size = size
        if isinstance(preload, str):
            preload = [m.strip() for m in preload.split(",") if m.strip()]
        self.preload = tuple(DEFAULT_PRELOAD if preload is None else preload)
        self.idle_s = float(os.environ.get(IDLE_ENV, "600")) if idle_s is None else idle_s
        #: standbys warm up at the lowest priority when it can be given back before they run a notebook
        self.background = can_restore_priority()
        #: the notebook event at which the executor starts the next standby: as soon as the notebook is handed
        #: over when standbys warm up at low priority (they use what the notebook leaves over, and get this
        #: process's priority at ``fit_finished``: :meth:`promote`), else once its training has finished (no
        #: competition with training, which multi-threaded CPU kernels handle badly)
        self.refill_on = "started" if self.background else "fit_finished"
        self._standbys: list[WarmKernel] = []
        self._lock = threading.Lock()

    def take(self, kernel_name: str) -> tuple[WarmKernel, bool]:
        """A kernel for one notebook: a matching standby (``warm=True``) or one started now."""
        with self._lock:
            self._prune()
            kernel = next((k for k in self._standbys if k.usable_for(kernel_name)), None)
            if kernel is not None:
                self._standbys.remove(kernel)
            else:  # started under another environment: of no use any more
                for stale in [k for k in self._standbys if k.kernel_name == kernel_name]:
                    self._standbys.remove(stale)
                    stale.close()
        warm = kernel is not None
        kernel = kernel or WarmKernel(kernel_name, preload=self.preload)
        kernel.hand_over()
        return kernel, warm

    def refill(self, kernel_name: str) -> bool:
        """Start a standby for ``kernel_name`` unless the pool is full or one is ready. True when started."""
        if self.size <= 0:
            return False
        with self._lock:
            self._prune()
            if any(k.usable_for(kernel_name) for k in self._standbys) or len(self._standbys) >= self.size:
                return False
            kernel = WarmKernel(kernel_name, preload=self.preload, background=self.background)
            kernel.timer = threading.Timer(self.idle_s, self._expire, args=(kernel,))
            kernel.timer.daemon = True
            kernel.timer.start()
            self._standbys.append(kernel)
            return True

    def promote(self) -> None:
        """Give standbys still warming up this process's priority (the running notebook's training is over:
        nothing to protect any more, and on a machine loaded by others the lowest priority would starve them)."""
        for kernel in self.standbys:
            if not kernel.ready:
                kernel.raise_priority()

    def _expire(self, kernel: WarmKernel) -> None:
        with self._lock:
            if kernel in self._standbys:
                self._standbys.remove(kernel)
        if not kernel.taken:
            kernel.close()

    def close(self) -> None:
        """Shut every standby down."""
        with self._lock:
            standbys, self._standbys = self._standbys, []
        for kernel in standbys:
            kernel.close()

    @property
    def standbys(self) -> list[WarmKernel]:
        with self._lock:
            return list(self._standbys)

    def _prune(self) -> None:
        for kernel in [k for k in self._standbys if k.dead]:
            self._standbys.remove(kernel)
            kernel.close()


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
