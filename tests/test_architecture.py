"""The package's shape, checked: layers only import downwards, no import cycles, no module over 400 lines,
task-type knowledge only in the task backends, and function-level imports only where a heavy or optional
dependency (or a module that pulls one in) is deferred, each with its reason written beside it.

The layers, lowest first (a module may import its own layer and those below)::

    0  errors, registry, names, fileio, spec, recipe, runfolder, tasks (the light descriptors in tasks/__init__.py)
    1  data
    2  records, events, evaluation
    3  models, intent
    4  tasks.classification / tasks.detection (the kernel-side implementations), widgets
    5  notebooks, execution, plan, llm, report
    6  agent
    7  server, cli and the command modules
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "clinagent_lab"
MAX_LINES = 400

LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("", "errors", "registry", "names", "fileio", "spec", "recipe", "runfolder", "tasks")),
    (1, ("data",)),
    (2, ("records", "events", "evaluation")),
    (3, ("models", "intent")),
    (4, ("tasks.classification", "tasks.detection", "widgets")),
    (5, ("notebooks", "execution", "plan", "llm", "report")),
    (6, ("agent",)),
    (7, ("server", "cli", "cli_progress", "cli_questions", "cli_resources", "demo_check", "commands")),
]
#: packages whose ``__init__`` alone sits in a lower layer than their sub-modules
INIT_ONLY = {"", "tasks"}

#: third-party modules worth deferring: heavy to import (seconds, or GPU/driver start-up), optional, or (pandas,
#: numpy) kept out of the Jupyter server's start-up
HEAVY = {"pandas", "numpy", "torch", "torchvision", "lightning", "torchmetrics", "timm", "albumentations", "cv2", "litellm",
         "matplotlib", "sklearn", "scipy", "pydicom", "PIL", "papermill", "nbconvert", "nbclient", "nbformat",
         "jupyter_client", "jupyter_core", "jupyter_server", "IPython", "ipywidgets", "anywidget", "captum",
         "onnx", "onnxruntime", "submitit", "safetensors", "huggingface_hub", "faster_coco_eval", "rich",
         "rapidfuzz", "psutil", "resource"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def layer(module: str) -> int:
    best, length = None, -1
    for rank, prefixes in LAYERS:
        for prefix in prefixes:
            exact = module == prefix
            below = prefix not in INIT_ONLY and (module.startswith(prefix + ".") if prefix else False)
            if (exact or below) and len(prefix) > length:
                best, length = rank, len(prefix)
    assert best is not None, f"clinagent_lab.{module} is in no layer: add it to LAYERS"
    return best


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if node.level:
        base = package[: len(package) - (node.level - 1)] if module else []
        target = ".".join([*base, *([node.module] if node.module else [])])
    elif node.module and node.module.startswith("clinagent_lab"):
        target = node.module.removeprefix("clinagent_lab").lstrip(".")
    else:
        return []
    out = []
    for alias in node.names:
        sub = f"{target}.{alias.name}" if target else alias.name
        out.append(sub if sub in MODULES else target)
    return out


def _imports(module: str, path: Path) -> list[tuple[str, int, bool, bool]]:
    """(imported project module, line, inside a function, under TYPE_CHECKING) for every project import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function, type_only = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            targets = _resolve(module, path, node)
        elif isinstance(node, ast.Import):
            targets = [a.name.removeprefix("clinagent_lab").lstrip(".") for a in node.names
                       if a.name.split(".")[0] == "clinagent_lab"]
        found += [(t, node.lineno, id(node) in in_function, id(node) in type_only) for t in targets]
    return found


def test_no_module_imports_a_layer_above_it():
    upward = [f"clinagent_lab.{m}:{line} imports clinagent_lab.{t} (layer {layer(m)} -> {layer(t)})"
              for m, p in MODULES.items() for t, line, _, type_only in _imports(m, p)
              if not type_only and layer(t) > layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles_between_modules():
    graph = {m: {t for t, _, fn, type_only in _imports(m, p) if not fn and not type_only and t != m}
             for m, p in MODULES.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + ".") or node == "":
                continue  # a package's __init__ importing its own sub-modules is not a cycle
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("module", sorted(MODULES), ids=lambda m: m or "clinagent_lab")
def test_modules_stay_readable(module):
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{MODULES[module]} has {lines} lines; split it by concern (<= {MAX_LINES})"


def test_task_type_branches_live_in_the_task_backends():
    found = []
    for module, path in MODULES.items():
        if module == "tasks" or module.startswith("tasks."):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            names = [s for s in sides if isinstance(s, (ast.Attribute, ast.Name))
                     and (getattr(s, "attr", None) or getattr(s, "id", None)) == "task_type"]
            literals = [s for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)
                        or isinstance(s, (ast.Tuple, ast.List, ast.Set))
                        and all(isinstance(e, ast.Constant) for e in s.elts)]
            if names and literals:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "ask the task backend (tasks.get_backend) instead:\n" + "\n".join(found)


def _pulls_in_heavy(module: str, seen: set[str] | None = None) -> bool:
    """Whether importing ``clinagent_lab.<module>`` imports a HEAVY library (directly or through others)."""
    seen = seen if seen is not None else set()
    if module in seen or module not in MODULES:
        return False
    seen.add(module)
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in HEAVY for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] in HEAVY:
            return True
    return any(_pulls_in_heavy(t, seen) for t, _, fn, type_only in _imports(module, MODULES[module])
               if not fn and not type_only)


def test_function_level_imports_defer_something_heavy_and_say_why():
    problems = []
    for module, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").split("\n")
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                if isinstance(node, ast.Import):
                    heavy = all(a.name.split(".")[0] in HEAVY for a in node.names)
                elif node.level or (node.module or "").startswith("clinagent_lab"):
                    heavy = any(_pulls_in_heavy(t) for t in _resolve(module, path, node))
                else:
                    heavy = (node.module or "").split(".")[0] in HEAVY
                if not heavy:
                    problems.append(f"{where}: {ast.unparse(node)} is light: import it at the top of the module")
                    continue
                text = lines[node.lineno - 1]
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                if "#" not in text and not above.startswith("#"):
                    problems.append(f"{where}: {ast.unparse(node)} needs a short reason (a '# ...' comment)")
    assert not problems, f"{len(problems)} function-level imports:\n" + "\n".join(problems)


def test_importing_the_package_keeps_albumentations_off_the_network():
    """albumentations asks PyPI for its latest version on import unless told not to: never from our processes."""
    import os
    import subprocess
    import sys

    code = ("import sys\ncalls = []\n"
            "sys.addaudithook(lambda e, a: calls.append(e) if e in ('socket.getaddrinfo', 'socket.connect', "
            "'urllib.Request') else None)\n"
            "import clinagent_lab\nimport albumentations\nprint(len(calls))\n")
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "0", out.stdout + out.stderr
