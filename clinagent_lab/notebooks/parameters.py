"""A run's papermill parameters: the values recorded for a notebook, and the plain papermill command that
reruns it.

An iteration's values go into its notebook through papermill's injection (a cell tagged ``injected-parameters``
after the template's ``parameters`` cell, which stays as the template has it) and into the run folder as
``parameters.yaml``; the epoch plan the run recorded goes to ``replay.yaml`` (:class:`~clinagent_lab.runfolder.
RunFolder`). The executed notebook is never rewritten. Papermill *replaces* an injected cell when it runs a
notebook again, so a rerun passes the file back: ``papermill iteration.ipynb out.ipynb -f parameters.yaml``.

Example:
    >>> papermill_command("iteration.ipynb", "out.ipynb", files=["parameters.yaml"],
    ...                   overrides={"seed": 1, "max_epochs": [3, 2], "data_format": ""})
    "papermill iteration.ipynb out.ipynb -f parameters.yaml -p seed 1 -y 'max_epochs: [3, 2]' -r data_format ''"
"""

from __future__ import annotations

import ast
import json
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..runfolder import RunFolder

__all__ = ["recorded_parameters", "notebook_values", "papermill_command", "override_args", "rerun_parameters"]


def notebook_values(nb: Any, tags: tuple[str, ...] = ("parameters", "injected-parameters")) -> dict[str, Any]:
    """The literal values assigned in ``nb``'s ``parameters`` cell, then in its ``injected-parameters`` cell
    (the latter win, as in the kernel). Values that are not literals are skipped."""
    values: dict[str, Any] = {}
    for tag in tags:
        cell = next((c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])), None)
        if cell is None:
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                try:
                    values[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return values


def recorded_parameters(notebook: str | Path, *, injected_only: bool = False) -> dict[str, Any]:
    """The values a run's notebook ran with: its run folder's ``parameters.yaml`` when there is one, else what
    its cells assign (sessions recorded before parameters were injected baked them into the parameters cell);
    ``injected_only``: only what its ``injected-parameters`` cell assigns, when there is no file."""
    path = Path(notebook)
    folder = RunFolder(path.parent, notebook_name=path.name)
    if folder.parameters.exists():
        return folder.read_parameters()
    if not path.exists():
        return {}
    import nbformat  # deferred: its schema validation takes seconds to import

    tags = ("injected-parameters",) if injected_only else ("parameters", "injected-parameters")
    return notebook_values(nbformat.read(path, as_version=4), tags)


def override_args(overrides: dict[str, Any]) -> list[str]:
    """papermill CLI arguments for ``overrides``: ``-p`` for numbers and booleans (papermill parses them back),
    ``-r`` for strings (kept raw), ``-y`` with a YAML flow value for lists, dicts and None."""
    args: list[str] = []
    for name, value in overrides.items():
        if isinstance(value, (bool, int, float)):
            args += ["-p", name, str(value)]
        elif isinstance(value, str):
            args += ["-r", name, value]
        else:
            args += ["-y", f"{name}: {json.dumps(value)}"]
    return args


def papermill_command(notebook: str | Path, output: str | Path, *, files: Iterable[str | Path] = (),
                      overrides: dict[str, Any] | None = None, cwd: str | Path | None = None) -> str:
    """The shell command that runs ``notebook`` with papermill: parameter ``files`` in order, then
    ``overrides`` (see :func:`override_args`), outputs written to ``cwd`` (default: the caller's folder)."""
    argv = ["papermill", str(notebook), str(output)]
    for file in files:
        argv += ["-f", str(file)]
    argv += override_args(overrides or {})
    if cwd is not None:
        argv += ["--cwd", str(cwd)]
    return shlex.join(argv)


def rerun_parameters(notebook: Path, overrides: dict[str, Any],
                     timeout_s: float | None = None) -> tuple[list[Path], dict[str, Any], dict[str, Any]]:
    """(papermill parameter files, command-line overrides, all the values) of a rerun of ``notebook``.

    The files are the run folder's ``parameters.yaml`` (what papermill injected when the iteration ran) and
    ``replay.yaml`` (the epochs the run planned for its time budget). Fixing ``max_epochs`` (the plan history
    when the second epoch revised it, see ``epoch_plan`` in run_info.json) and lifting the time guard to the
    rerun's budget (``timeout_s``; None keeps the recipe's guard) reproduces the same weights on any machine
    speed. A run that its time guard stopped early (``stopped_by_time``, rare since the plan is fitted to the
    measured speed and checked after the second epoch) is rerun to the end of its planned schedule instead, and
    differs from it. A ``max_epochs`` in ``overrides`` replaces the plan.

    Sessions recorded before the files existed have their values baked into the notebook and their plan in
    run_info.json, which becomes an override; so do the values of an ``injected-parameters`` cell when the
    notebook has no parameters file beside it (papermill replaces that cell when it runs the notebook again).
    """
    folder = RunFolder(notebook.parent, notebook_name=notebook.name)
    files, values, extra, in_cells = [], {}, {}, {}
    if folder.parameters.exists():
        files.append(folder.parameters)
        values.update(folder.read_parameters())
    else:
        in_cells = recorded_parameters(notebook)
        extra.update(recorded_parameters(notebook, injected_only=True))
    if "max_epochs" not in overrides:
        if folder.replay_parameters.exists():
            files.append(folder.replay_parameters)
            replay = folder.read_parameters(replay=True)
            values.update(replay)
        else:
            replay = folder.replay_values()
            extra.update(replay)
        if replay and timeout_s is not None:
            extra["time_budget_s"] = float(timeout_s)
    overrides = {**extra, **overrides}
    values.update(overrides)
    if {**in_cells, **values}.get("output_dir", ".") != ".":  # outputs go to the rerun's working folder
        values["output_dir"] = overrides["output_dir"] = "."
    return files, overrides, values
