"""Turn a tested template notebook into an iteration notebook.

Parameters go in through papermill's injection at execution (a cell tagged ``injected-parameters`` after the
template's ``parameters`` cell, which the renderer leaves as it is); the only text the renderer changes is the
source of cells tagged ``hook:<name>``, filled with custom code that has passed the code check. Cells tagged
``frozen`` (data split, evaluation) are compared with the packaged template by hash and can never be replaced.
"""

from __future__ import annotations

import ast
import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

import nbformat

from ..errors import ClinagentError, RecipeError, UnknownNameError
from ..tasks import TASKS

__all__ = ["TEMPLATES", "template_path", "load_template", "render_iteration", "frozen_hash", "hook_names",
           "verify_frozen", "declared_parameters", "check_parameters",
           "FINAL_TEST_TEMPLATE"]

#: the iteration templates, one per task backend
TEMPLATES = tuple(sorted({TASKS.get(name).template for name in TASKS.names()}))
FINAL_TEST_TEMPLATE = "final_test.ipynb"


def template_path(name: str) -> Path:
    path = Path(str(resources.files("clinagent_lab.notebooks") / "templates" / name))
    if not path.exists():
        known = [p.name for p in path.parent.glob("*.ipynb")]
        raise UnknownNameError("notebook template", name, known)
    return path


def load_template(name: str) -> nbformat.NotebookNode:
    return nbformat.read(template_path(name), as_version=4)


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def hook_names(nb: nbformat.NotebookNode) -> list[str]:
    return [t.split(":", 1)[1] for c in nb.cells for t in _tags(c) if t.startswith("hook:")]


def frozen_hash(nb: nbformat.NotebookNode) -> str:
    """sha256 over the sources of the cells tagged ``frozen``, in order."""
    h = hashlib.sha256()
    for cell in nb.cells:
        if "frozen" in _tags(cell):
            h.update(cell.source.encode("utf-8"))
            h.update(b"\x00")
    return h.hexdigest()


def verify_frozen(nb: nbformat.NotebookNode, template: str) -> None:
    """Raise RecipeError when the frozen cells of ``nb`` differ from the packaged template's."""
    expected = frozen_hash(load_template(template))
    if frozen_hash(nb) != expected:
        raise RecipeError("the frozen cells (data split or evaluation) of this notebook were changed",
                          fix="the evaluator and the split are library code; change the recipe or a hook cell, "
                              "not a cell tagged 'frozen'")


def declared_parameters(nb: nbformat.NotebookNode) -> list[str]:
    """Names assigned in the cell tagged ``parameters``."""

    for cell in nb.cells:
        if "parameters" in _tags(cell):
            tree = ast.parse(cell.source)
            return [t.id for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)]
    return []


def check_parameters(nb_path: str | Path, params: dict[str, Any]) -> list[str]:
    """Raise RecipeError naming the declared parameters when ``params`` has an undeclared one (papermill itself
    only warns); returns the declared names."""
    path = Path(nb_path)
    if not path.exists():
        raise ClinagentError(f"notebook not found: {path}", fix="pass the iteration.ipynb of a session")
    declared = declared_parameters(nbformat.read(path, as_version=4))
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise RecipeError(f"parameter(s) {', '.join(unknown)} are not declared by {path.name}",
                          where=str(path), fix=f"use the declared parameters: {', '.join(declared)}")
    return declared


def render_iteration(template: str, out_path: str | Path, *, custom_code: dict[str, str] | None = None,
                     title: str | None = None, rationale: str | None = None) -> Path:
    """Write the iteration notebook (before papermill) to ``out_path``.

    Args:
        template: template file name, e.g. ``classification.ipynb``.
        out_path: where to write it.
        custom_code: hook name -> code; every name must be a ``hook:<name>`` cell of the template.
        title, rationale: shown in a markdown cell at the top (why this iteration exists).

    The parameters cell stays the template's: the iteration's values go in through papermill's injection.
    """
    nb = load_template(template)
    hooks = hook_names(nb)
    for name in custom_code or {}:
        if name not in hooks:
            raise RecipeError(f"unknown code hook '{name}'", where=f"template {template}",
                              fix=f"use one of the hooks: {', '.join(hooks)}")
    for cell in nb.cells:
        for tag in _tags(cell):
            if tag.startswith("hook:") and (custom_code or {}).get(tag[5:]):
                cell.source = f"# hook: {tag[5:]} (written by the agent, checked before running)\n" + \
                    custom_code[tag[5:]].rstrip() + "\n"
    if title or rationale:
        header = nbformat.v4.new_markdown_cell(f"## {title or 'Iteration'}\n\n{rationale or ''}".strip())
        header.metadata["tags"] = ["clinagent", "iteration-header"]
        nb.cells.insert(0, header)
    verify_frozen(nb, template)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return out
