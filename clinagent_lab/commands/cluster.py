"""Where notebooks run, on the command line: ``--backend local|slurm`` and the cluster's job options for ``run``
and ``rerun``, and ``clinagent resume`` (reopen a session whose process died, reattach to its cluster jobs,
continue the loop).

Example::

    clinagent run --intent "pneumothorax" --data data/ --backend slurm --partition gpu --gpus-per-job 1
    clinagent resume runs/ptx            # after the terminal closed: waits for the running job, goes on
    clinagent rerun runs/ptx/iterations/iter_03/iteration.ipynb --seeds 1 2 3   # on the session's backend
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from ..execution import BACKENDS, ExecutionBackend, make_backend, resolve_config
from ..records import Session

__all__ = ["register", "add_backend_args", "execution_options", "rerun_backend"]


def add_backend_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where notebooks run (default: CLINAGENT_BACKEND, the config file, else local)")
    g.add_argument("--backend", choices=BACKENDS, help="local warm kernels, or one SLURM job per notebook")
    g.add_argument("--parallel", type=int, metavar="K", help="candidates per round (default 1)")
    g.add_argument("--partition", help="SLURM partition")
    g.add_argument("--account", help="SLURM account charged for the jobs")
    g.add_argument("--qos", help="SLURM quality of service")
    g.add_argument("--gpus-per-job", type=int, help="GPUs per job (several: one task per GPU, DDP)")
    g.add_argument("--cpus-per-job", type=int, help="CPUs per job (default 4)")
    g.add_argument("--mem", help="memory per job, e.g. 32G")
    g.add_argument("--time-margin", type=float, metavar="S", help="seconds added to the budget for --time")
    g.add_argument("--sbatch", action="append", metavar="LINE", help="extra #SBATCH line, e.g. --sbatch=--constraint=a100 (repeatable)")


def execution_options(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given (None where not given), shaped like :class:`~clinagent_lab.execution.ExecutionConfig`."""
    get = lambda name: getattr(args, name, None)  # noqa: E731
    slurm = {"partition": get("partition"), "account": get("account"), "qos": get("qos"),
             "gpus_per_job": get("gpus_per_job"), "cpus_per_job": get("cpus_per_job"), "mem": get("mem"),
             "time_margin_s": get("time_margin"), "sbatch": get("sbatch")}
    return {"backend": get("backend"), "parallel": get("parallel"),
            "slurm": {k: v for k, v in slurm.items() if v is not None}}


def _session_of(notebook: Path) -> Session | None:
    for folder in notebook.resolve().parents:
        if (folder / "session.json").exists():
            return Session.load(folder)
    return None


def rerun_backend(args: argparse.Namespace) -> ExecutionBackend | None:
    """The backend a rerun of ``args.notebook`` goes to: the flags, else the session's own; None for this
    machine (reruns then start their own kernels, ``--workers`` of them at once)."""
    session = _session_of(Path(args.notebook))
    config = resolve_config(execution_options(args), recorded=session.execution if session else None)
    return None if config.backend == "local" else make_backend(config)


def cmd_resume(args: argparse.Namespace) -> int:
    from ..agent.engine import Engine  # the engine pulls in pandas and the data stack

    engine = Engine.open(args.out, execution=execution_options(args))
    session = engine.run(on_event=args.printer(), finish=engine.session.final_test is None)
    return args.print_outcome(session)


def register(sub: Any, *, printer: Callable[[], Any], print_outcome: Callable[[Session], int]) -> None:
    """Add ``resume`` (the CLI passes its progress printer and outcome summary: it imports this module)."""
    p = sub.add_parser("resume", help="reopen a session, reattach to its running cluster jobs, continue the loop")
    p.add_argument("out", help="the session folder")
    add_backend_args(p)
    p.set_defaults(func=cmd_resume, printer=printer, print_outcome=print_outcome)
