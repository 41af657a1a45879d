"""Where notebooks run, configured in one place.

Precedence, lowest first: the defaults (``local``), the ``[execution]`` section of the config file
(``CLINAGENT_CONFIG`` or ``~/.config/clinagent/config.toml``), the environment (``CLINAGENT_BACKEND``), then
what the front door passes (CLI flags, the server's traitlets). The resolved configuration is written into the
session, so a rerun or a reopened session goes to the same backend unless told otherwise.

Example config file::

    [execution]
    backend = "slurm"
    parallel = 2

    [execution.slurm]
    partition = "gpu"
    account = "radiology"
    gpus_per_job = 1
    cpus_per_job = 8
    mem = "32G"
    sbatch = ["--constraint=a100"]

Example:
    >>> cfg = resolve_config({"backend": "slurm", "slurm": {"partition": "gpu"}}, env={}, config_file=None)
    >>> cfg.backend, cfg.slurm.partition, cfg.parallel
    ('slurm', 'gpu', 1)
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ClinagentError
from .base import ExecutionBackend
from .local import LocalBackend
from .slurm import SlurmBackend, SlurmOptions

__all__ = ["ExecutionConfig", "resolve_config", "make_backend", "BACKEND_ENV", "CONFIG_ENV", "BACKENDS"]

BACKEND_ENV = "CLINAGENT_BACKEND"
CONFIG_ENV = "CLINAGENT_CONFIG"
BACKENDS = ("local", "slurm")


class ExecutionConfig(BaseModel):
    """The backend, how many candidates a round runs, and the cluster's job options."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "slurm"] = "local"
    #: candidates per round (``--parallel``); the local backend runs them one at a time unless
    #: ``local_parallel`` allows more
    parallel: int = Field(default=1, ge=1, le=16)
    local_parallel: int = Field(default=1, ge=1)
    slurm: SlurmOptions = Field(default_factory=SlurmOptions)


def _config_file(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    p = Path(path).expanduser()
    if not p.exists():
        return {}
    try:
        return dict(tomllib.loads(p.read_text(encoding="utf-8")).get("execution", {}))
    except tomllib.TOMLDecodeError as exc:
        raise ClinagentError(f"the config file is not valid TOML: {exc}", where=str(p),
                             fix="fix the [execution] section or remove the file") from None


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if value is None:
            continue
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def resolve_config(explicit: dict[str, Any] | None = None, *, recorded: dict[str, Any] | None = None,
                   env: dict[str, str] | None = None, config_file: str | Path | None | bool = True) -> ExecutionConfig:
    """The configuration from every source (see the module's docstring); ``recorded`` (a session's) sits
    between the environment and ``explicit``. ``None`` values in ``explicit`` mean "not given"."""
    env = dict(os.environ) if env is None else env
    if config_file is True:
        config_file = env.get(CONFIG_ENV) or "~/.config/clinagent/config.toml"
    data = _config_file(config_file or None)
    if env.get(BACKEND_ENV):
        data = _merge(data, {"backend": env[BACKEND_ENV].strip().lower()})
    data = _merge(data, recorded or {})
    data = _merge(data, explicit or {})
    try:
        return ExecutionConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:4])
        raise ClinagentError(f"the execution configuration is invalid: {problems}",
                             where=f"--backend/--parallel/slurm options, {BACKEND_ENV} or [execution] in "
                                   f"{config_file or 'no config file'}",
                             fix=f"backend is one of {', '.join(BACKENDS)}; see docs/cluster.md") from None


def make_backend(config: ExecutionConfig) -> ExecutionBackend:
    """The backend ``config`` names."""
    if config.backend == "slurm":
        return SlurmBackend(config.slurm)
    return LocalBackend(max_parallel=config.local_parallel)
