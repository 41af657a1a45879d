"""An iteration's run folder (``<session>/iterations/iter_NN/``, or ``<session>/final_test/``) and the files
the kernel and the host exchange through it, as one concept with typed contents.

The kernel writes ``metrics.json`` (validation metrics, the frozen evaluator's dict), ``run_info.json``
(:class:`RunInfo`), predictions (the task backend names the file), ``model.ckpt`` and ``events.jsonl``
(:mod:`clinagent_lab.events`); the host renders ``input.ipynb`` (the template, parameters cell untouched), writes
the values papermill injects to ``parameters.yaml`` and, once the run has recorded its epoch plan, the plan to pin
for an exact replay to ``replay.yaml``; papermill writes the executed notebook, which nothing rewrites afterwards.
A plain rerun is ``papermill iteration.ipynb out.ipynb -f parameters.yaml -f replay.yaml``.

Example:
    >>> folder = RunFolder.iteration("/runs/ptx", 3)
    >>> folder.path.as_posix(), folder.metrics.name, folder.notebook.name
    ('/runs/ptx/iterations/iter_03', 'metrics.json', 'iteration.ipynb')
    >>> RunInfo.model_validate({"evaluator_hash": "ab", "epoch_plan": [12, 9]}).replay_epochs()
    [12, 9]
    >>> folder.parameters.name, folder.replay_parameters.name
    ('parameters.yaml', 'replay.yaml')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import SessionError
from .fileio import atomic_write_text

__all__ = ["RunFolder", "RunInfo", "FitState", "SPLITS_FILE", "FINGERPRINT_FILE"]

#: session-level files beside ``session.json``
SPLITS_FILE = "splits.csv"
FINGERPRINT_FILE = "dataset_fingerprint.json"


class RunInfo(BaseModel):
    """``run_info.json``: how a run went (iteration or final test), for the host, reruns and the report."""

    model_config = ConfigDict(extra="allow")

    #: the frozen evaluator's hash (the host rejects a run whose hash differs from the library's)
    evaluator_hash: str = ""
    seed: int | None = None
    epochs_run: int | None = None
    #: the epochs the run planned for its budget (its last plan)
    max_epochs: int | None = None
    #: the plan history: [first] or [first, revised]
    epoch_plan: list[int] = Field(default_factory=list)
    stopped_by_time: bool = False
    global_step: int | None = None
    #: processes the model trained in, and the Lightning strategy (``ddp_notebook`` when several)
    world_size: int | None = None
    strategy: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    #: final test only: images evaluated and how many times the test loader was built
    n_samples: int | None = None
    test_reads: int | None = None

    def recorded_plan(self) -> list[int]:
        """The epoch plan: ``epoch_plan``, else ``[max_epochs]`` (runs recorded before plans were kept)."""
        if self.epoch_plan:
            return [int(e) for e in self.epoch_plan]
        return [int(self.max_epochs)] if self.max_epochs else []

    def replay_epochs(self) -> int | list[int] | None:
        """What a rerun pins as ``max_epochs``: the one count, or [first, revised] when the plan changed."""
        plan = self.recorded_plan()
        if not plan:
            return None
        return plan[0] if len(plan) == 1 else plan


class FitState(BaseModel):
    """``fit_state.json``: how the training loop ended, written at the end of ``fit`` by the process that ran it
    (rank 0 when several processes train). The notebook's own ``Trainer`` gets only the weights and the best
    checkpoint back from DDP processes, not the loop's epochs, steps or epoch plan."""

    model_config = ConfigDict(extra="forbid")

    epochs_run: int
    global_step: int
    #: the epochs planned last, and the plan history ([first] or [first, revised]; empty when not planned)
    max_epochs: int | None = None
    epoch_plan: list[int] = Field(default_factory=list)
    stopped_by_time: bool = False
    world_size: int = 1
    strategy: str = ""


@dataclass(frozen=True)
class RunFolder:
    """The files of one run, by name. The folder need not exist yet."""

    path: Path
    notebook_name: str = "iteration.ipynb"

    @classmethod
    def iteration(cls, session_dir: str | Path, index: int) -> RunFolder:
        return cls(Path(session_dir) / "iterations" / f"iter_{index:02d}")

    @classmethod
    def final_test(cls, session_dir: str | Path) -> RunFolder:
        return cls(Path(session_dir) / "final_test", notebook_name="final_test.ipynb")

    # --- the files ----------------------------------------------------------------------------------------
    @property
    def input_notebook(self) -> Path:
        """The rendered notebook before execution."""
        return self.path / "input.ipynb"

    @property
    def notebook(self) -> Path:
        """The executed notebook (papermill's output)."""
        return self.path / self.notebook_name

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def test_metrics(self) -> Path:
        return self.path / "test_metrics.json"

    @property
    def run_info(self) -> Path:
        return self.path / "run_info.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "model.ckpt"

    @property
    def fit_state(self) -> Path:
        """:class:`FitState` of the run's training loop."""
        return self.path / "fit_state.json"

    @property
    def parameters(self) -> Path:
        """The values papermill injected into the notebook (a papermill ``-f`` parameters file)."""
        return self.path / "parameters.yaml"

    @property
    def replay_parameters(self) -> Path:
        """The epoch plan to pin for an exact replay (``max_epochs``), a second ``-f`` file after the run."""
        return self.path / "replay.yaml"

    def predictions(self, backend: Any) -> Path:
        """Validation predictions of a run of ``backend`` (a :class:`~clinagent_lab.tasks.TaskBackend`)."""
        return self.path / backend.predictions_file

    def test_predictions(self, backend: Any) -> Path:
        return self.path / backend.test_predictions_file

    # --- reading and writing ------------------------------------------------------------------------------
    def has_results(self) -> bool:
        """Whether the frozen evaluation saved its results (metrics and run info)."""
        return self.metrics.exists() and self.run_info.exists()

    def read_metrics(self, test: bool = False) -> dict[str, Any]:
        return _read_json(self.test_metrics if test else self.metrics)

    def read_run_info(self) -> RunInfo:
        data = _read_json(self.run_info)
        try:
            return RunInfo.model_validate(data)
        except ValidationError as exc:
            raise SessionError(f"{self.run_info.name} does not match its schema: {exc.errors()[0]['msg']}",
                               where=f"{self.run_info} field '{'.'.join(map(str, exc.errors()[0]['loc']))}'",
                               fix="rerun the iteration; the file is written by the notebook") from None

    def write_run_info(self, info: RunInfo) -> None:
        atomic_write_text(self.run_info, info.model_dump_json(indent=2, exclude_none=True))

    def write_fit_state(self, state: FitState) -> None:
        atomic_write_text(self.fit_state, state.model_dump_json(indent=2))

    def read_fit_state(self) -> FitState | None:
        """The training loop's end state, or None when this run has not finished a ``fit`` (yet)."""
        if not self.fit_state.exists():
            return None
        return FitState.model_validate(_read_json(self.fit_state))

    def write_parameters(self, values: dict[str, Any], *, replay: bool = False) -> Path:
        """Write ``values`` as a papermill parameters file (:attr:`parameters`, or :attr:`replay_parameters`)."""
        path = self.replay_parameters if replay else self.parameters
        what = ("the epoch plan this run recorded, pinned for an exact replay" if replay
                else "the values papermill injected into this run's notebook")
        header = f"# {what}\n# papermill {self.notebook_name} out.ipynb -f {self.parameters.name}" + \
            (f" -f {path.name}" if replay else "") + "\n"
        atomic_write_text(path, header + yaml.safe_dump(values, sort_keys=False, allow_unicode=True))
        return path

    def read_parameters(self, *, replay: bool = False) -> dict[str, Any]:
        """The values of :attr:`parameters` (or :attr:`replay_parameters`); ``{}`` when the file is absent
        (sessions recorded before parameters were injected baked them into the notebook)."""
        path = self.replay_parameters if replay else self.parameters
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, yaml.YAMLError) as exc:
            raise SessionError(f"{path.name} cannot be read ({exc})", where=str(path),
                               fix="delete it to rerun with the notebook's own parameters, or restore it") from None
        if not isinstance(values, dict):
            raise SessionError(f"{path.name} does not hold a mapping of parameter names to values",
                               where=str(path), fix="write one 'name: value' line per parameter")
        return values

    def replay_values(self) -> dict[str, Any]:
        """What an exact replay pins: :attr:`replay_parameters`, else the plan in ``run_info.json`` (runs
        recorded before the file was written), else ``{}`` (no plan recorded)."""
        if self.replay_parameters.exists():
            return self.read_parameters(replay=True)
        epochs = self.read_run_info().replay_epochs() if self.run_info.exists() else None
        return {} if epochs is None else {"max_epochs": epochs}

    def write_metrics(self, metrics: dict[str, Any], test: bool = False) -> None:
        atomic_write_text(self.test_metrics if test else self.metrics, json.dumps(metrics, indent=2))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SessionError(f"{path.name} is missing", where=str(path),
                           fix="the run ended before it saved its results; read its notebook") from exc
    except json.JSONDecodeError as exc:
        raise SessionError(f"{path.name} is not valid JSON ({exc.msg})", where=f"{path}, line {exc.lineno}",
                           fix="rerun the iteration; the file is written by the notebook") from exc
