"""Where a notebook runs: :class:`ExecutionBackend` (submit / poll / cancel / reattach) with a ``local``
backend (warm kernels on this machine, the default) and a ``slurm`` backend (one batch job per notebook), and
their configuration in one place (:mod:`.config`)."""

from .base import ExecutionBackend, JobHandle, JobRecord, JobStatus, NotebookJob, read_record
from .config import BACKENDS, ExecutionConfig, make_backend, resolve_config
from .local import LocalBackend
from .slurm import SlurmBackend, SlurmError, SlurmOptions, slurm_available

__all__ = ["ExecutionBackend", "JobHandle", "JobRecord", "JobStatus", "NotebookJob", "read_record", "BACKENDS",
           "ExecutionConfig", "make_backend", "resolve_config", "LocalBackend", "SlurmBackend", "SlurmError",
           "SlurmOptions", "slurm_available"]
