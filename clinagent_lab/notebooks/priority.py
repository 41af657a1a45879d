"""CPU priority of a kernel warming up while another notebook trains (Linux; a no-op elsewhere).

Ours, not the kernel manager's: jupyter_client starts kernels at the caller's priority. A standby kernel
imports torch while the running notebook trains; on a machine with few cores its imports would compete with
training (OpenMP threads wait on each other), so it warms up at the lowest priority and gets the caller's back
with its notebook. A kernel runs in a session (and so a scheduler autogroup) of its own, and with autogroups a
nice value only counts inside its session, so the autogroup is lowered too. ``docs/benchmarks.md`` (standby
priority) has the measurement that keeps this.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BACKGROUND_NICE", "DEFAULT_GROUP_NICE", "autogroup_nice", "current_priority", "can_restore_priority",
           "renice"]

#: niceness of a standby while it warms up
BACKGROUND_NICE = 19
#: the autogroup niceness a kernel gets back when this process is in no autogroup (a container's root group)
DEFAULT_GROUP_NICE = 0


def autogroup_nice(pid: int | str = "self") -> int | None:
    """The niceness of ``pid``'s scheduler autogroup, or None without one."""
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text()
    except OSError:
        return None
    try:
        return int(text.rsplit("nice", 1)[1])
    except (IndexError, ValueError):
        return None


def current_priority() -> tuple[int, int]:
    """``(nice, autogroup nice)`` of this process: what a standby gets back with its notebook."""
    group = autogroup_nice()
    return os.getpriority(os.PRIO_PROCESS, 0), DEFAULT_GROUP_NICE if group is None else group


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


def renice(pid: int, nice: int, group: int | None = None) -> bool:
    """Set the nice value of every thread of ``pid`` (and its autogroup's, when ``group`` is given); False when
    not permitted."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    ok = True
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except ProcessLookupError:
            continue
        except PermissionError:
            ok = False
    if group is not None and autogroup_nice(pid) is not None:
        try:
            Path(f"/proc/{pid}/autogroup").write_text(str(group))
        except OSError:
            ok = False
    return ok
