"""Static checks on LLM-written hook code before it may go into an iteration notebook.

The code is never executed by the engine: it replaces the source of a notebook cell tagged ``hook:<name>``
and runs in the papermill kernel under the iteration's time budget. These checks (on the ``ast``, no
execution) refuse what such code must not do: start programs, reach the network, load code dynamically,
write outside the iteration folder, touch the test split, or tamper with modules.

Example:
    >>> check_code("def custom_loss(logits, labels):\\n    return (logits - labels).pow(2).mean()", "loss")
    []
    >>> check_code("import subprocess\\ndef custom_loss(logits, labels):\\n    return 0", "loss")
    ["line 1: imports 'subprocess' (starts programs); not allowed in hook code"]
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

__all__ = ["Hook", "HOOKS", "check_code", "MAX_CODE_CHARS"]

MAX_CODE_CHARS = 20_000


@dataclass(frozen=True)
class Hook:
    """A notebook cell the LLM may fill: the function it must define and that function's arguments."""

    name: str
    function: str
    args: tuple[str, ...]
    contract: str


HOOKS: dict[str, Hook] = {h.name: h for h in (
    Hook("model", "build_model", ("recipe", "num_classes", "in_channels"),
         "build_model(recipe: dict, num_classes: int, in_channels: int) -> torch.nn.Module returning logits "
         "of shape (batch, num_classes)"),
    Hook("loss", "custom_loss", ("logits", "labels"),
         "custom_loss(logits, labels) -> torch.Tensor (a scalar)"),
    Hook("augment", "extra_transforms", ("train",),
         "extra_transforms(train: bool) -> list of albumentations transforms"),
    Hook("sampler", "sample_weights", ("labels", "groups"),
         "sample_weights(labels: numpy array, groups: numpy array) -> numpy array of per-sample weights"),
)}

_FORBIDDEN_MODULES = {
    "subprocess": "starts programs", "pty": "starts programs", "multiprocessing": "starts processes",
    "socket": "opens network connections", "urllib": "reaches the network", "urllib3": "reaches the network",
    "http": "reaches the network", "requests": "reaches the network", "httpx": "reaches the network",
    "aiohttp": "reaches the network", "ftplib": "reaches the network", "smtplib": "sends e-mail",
    "telnetlib": "reaches the network", "paramiko": "reaches the network", "ctypes": "calls native code",
    "cffi": "calls native code", "importlib": "loads code dynamically", "runpy": "runs other code",
    "code": "runs other code", "builtins": "changes the built-ins", "shutil": "moves and deletes files",
    "tempfile": "writes files outside the iteration folder", "webbrowser": "opens programs",
    "signal": "interferes with the time budget", "threading": "outlives the time budget",
    "asyncio": "can start programs and connections",
}
_FORBIDDEN_OS = {
    "system": "starts programs", "popen": "starts programs", "fork": "starts processes",
    "forkpty": "starts processes", "kill": "stops processes", "killpg": "stops processes",
    "remove": "deletes files", "unlink": "deletes files", "rmdir": "deletes folders",
    "removedirs": "deletes folders", "rename": "moves files", "replace": "moves files",
    "open": "opens files at a low level", "chmod": "changes permissions",
    "chdir": "changes the working folder",
    "environ": "reads environment variables (they hold API keys)",
    "getenv": "reads environment variables (they hold API keys)",
    "putenv": "changes environment variables", "_exit": "kills the kernel",
}
_FORBIDDEN_OS_PREFIXES = {"exec": "replaces the process with a program", "spawn": "starts programs"}
_FORBIDDEN_CALLS = {
    "eval": "evaluates a string as code", "exec": "executes a string as code",
    "compile": "compiles a string to code", "__import__": "imports modules dynamically",
    "globals": "manipulates module globals", "vars": "manipulates namespaces",
    "locals": "manipulates namespaces", "breakpoint": "blocks the kernel",
    "input": "blocks the kernel waiting for input", "exit": "kills the kernel",
    "quit": "kills the kernel",
}
_WRITE_METHODS = {
    "write_text": "writes files", "write_bytes": "writes files", "touch": "creates files",
    "unlink": "deletes files", "rmdir": "deletes folders", "symlink_to": "creates links",
    "hardlink_to": "creates links", "rmtree": "deletes folder trees",
}
_DUNDER_ATTRS = {"__subclasses__", "__globals__", "__builtins__", "__code__", "__import__", "__loader__",
                 "__spec__", "__closure__", "__getattribute__", "__reduce__", "__reduce_ex__"}
_TEST_NAMES = {"test_dataloader", "include_test", "test_split", "test_set", "test_loader", "test_dataset",
               "test_indices", "test_idx", "test_df", "test_table", "read_test", "evaluate_test"}
_TEST_LITERALS = {"test", "testing", "holdout", "test_split"}
_WRITE_MODES = set("wax+")
_TEST_RULE = "the test split is evaluated once, by the library, at the end"


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.modules: set[str] = set()  # local names bound to imported modules
        self.os_names: set[str] = set()
        self.sys_names: set[str] = set()

    def add(self, node: ast.AST, text: str) -> None:
        line = getattr(node, "lineno", None)
        self.problems.append(f"line {line}: {text}" if line else text)

    # --- imports -----------------------------------------------------------------------------------
    def _module(self, node: ast.AST, name: str) -> bool:
        top = name.split(".")[0]
        if top in _FORBIDDEN_MODULES:
            self.add(node, f"imports '{name}' ({_FORBIDDEN_MODULES[top]}); not allowed in hook code")
            return False
        return True

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if self._module(node, alias.name):
                local = alias.asname or alias.name.split(".")[0]
                self.modules.add(local)
                if alias.name == "os":
                    self.os_names.add(local)
                if alias.name == "sys":
                    self.sys_names.add(local)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            self.add(node, "uses a relative import; hook code is a single cell and may import only packages")
            return
        if not self._module(node, module):
            return
        for alias in node.names:
            if alias.name == "*":
                self.add(node, f"uses 'from {module} import *'; import the names you need")
                continue
            if module == "os" and (alias.name in _FORBIDDEN_OS or alias.name.startswith(("exec", "spawn"))):
                self._os_attr(node, alias.name)
            elif module == "sys" and alias.name in ("modules", "path", "meta_path"):
                self.add(node, f"uses sys.{alias.name} (changes how modules load); not allowed")
            elif alias.name in _FORBIDDEN_CALLS:
                self.add(node, f"imports '{alias.name}' ({_FORBIDDEN_CALLS[alias.name]}); not allowed")
            elif alias.name in _TEST_NAMES:
                self.add(node, f"imports '{alias.name}', which reads the test split; {_TEST_RULE}")

    # --- names, attributes, calls ------------------------------------------------------------------
    def _os_attr(self, node: ast.AST, attr: str) -> None:
        reason = _FORBIDDEN_OS.get(attr) or next(
            (why for prefix, why in _FORBIDDEN_OS_PREFIXES.items() if attr.startswith(prefix)), None)
        if reason:
            self.add(node, f"uses os.{attr} ({reason}); not allowed in hook code")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in _TEST_NAMES:
            self.add(node, f"refers to '{node.id}'; {_TEST_RULE}")
        elif node.id in _DUNDER_ATTRS:
            self.add(node, f"uses '{node.id}' (reaches interpreter internals); not allowed")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        base = node.value
        if isinstance(base, ast.Name) and base.id in self.os_names:
            self._os_attr(node, node.attr)
        if isinstance(base, ast.Name) and base.id in self.sys_names and node.attr in ("modules", "path",
                                                                                     "meta_path"):
            self.add(node, f"uses sys.{node.attr} (changes how modules load); not allowed")
        if isinstance(base, ast.Name) and base.id in ("shutil",) and node.attr == "rmtree":
            self.add(node, "uses shutil.rmtree (deletes folder trees); not allowed")
        if node.attr in _DUNDER_ATTRS:
            self.add(node, f"uses '.{node.attr}' (reaches interpreter internals); not allowed")
        if node.attr in _TEST_NAMES:
            self.add(node, f"refers to '.{node.attr}'; {_TEST_RULE}")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in _FORBIDDEN_CALLS:
                self.add(node, f"calls {func.id}() ({_FORBIDDEN_CALLS[func.id]}); not allowed in hook code")
            elif func.id == "open":
                self._open(node)
            elif func.id in ("setattr", "delattr") and node.args and self._is_module_ref(node.args[0]):
                self.add(node, f"calls {func.id}() on a module (monkey-patches library code); not allowed")
            elif func.id == "getattr" and len(node.args) >= 2 and _is_str(node.args[1]) \
                    and node.args[1].value.startswith("__"):
                self.add(node, "uses getattr() to reach a dunder attribute; not allowed")
        elif isinstance(func, ast.Attribute):
            if func.attr in _WRITE_METHODS:
                self.add(node, f"calls .{func.attr}() ({_WRITE_METHODS[func.attr]}); hook code may write "
                         "only with open('relative/name', 'w') inside the iteration folder")
            elif func.attr == "open" and isinstance(func.value, ast.Name) \
                    and func.value.id in ("io", "codecs"):
                self._open(node)
        self.generic_visit(node)

    def _open(self, node: ast.Call) -> None:
        mode_node = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == "mode"), None)
        if mode_node is None:
            mode = "r"
        elif _is_str(mode_node):
            mode = mode_node.value
        else:
            self.add(node, "calls open() with a mode that is not a literal string; write modes must be "
                     "visible")
            return
        if not _WRITE_MODES & set(mode):
            return
        path = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "file"), None)
        if not (_is_str(path) and _relative_inside(path.value)):
            self.add(node, f"opens a file for writing (mode {mode!r}) outside the iteration folder; only a "
                     "relative literal path such as 'notes.txt' may be written")

    def _is_module_ref(self, node: ast.AST) -> bool:
        root = node
        while isinstance(root, (ast.Attribute, ast.Subscript)):
            root = root.value
        return isinstance(root, ast.Name) and root.id in self.modules

    # --- assignments: monkey-patching modules ------------------------------------------------------
    def _check_target(self, target: ast.AST) -> None:
        if isinstance(target, (ast.Attribute, ast.Subscript)) and self._is_module_ref(target):
            self.add(target, "assigns into an imported module (monkey-patches library code); not allowed")
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._check_target(elt)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_target(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_target(node.target)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._check_target(target)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.add(node, "uses 'global'; keep state inside the functions or classes you define")

    # --- the test split ----------------------------------------------------------------------------
    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg in _TEST_NAMES:
            self.add(node.value, f"passes '{node.arg}='; {_TEST_RULE}")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and node.value.strip().lower() in _TEST_NAMES:
            self.add(node, f"uses the string {node.value!r}; hook code must not touch the test split")
        elif isinstance(node.value, str) and node.value.strip().lower() in _TEST_LITERALS:
            self.add(node, f"uses the string {node.value!r} (a split name); hook code must not touch the "
                     "test split, which the library evaluates once at the end")


def _is_str(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _relative_inside(path: str) -> bool:
    p = path.replace("\\", "/")
    return bool(p) and not p.startswith(("/", "~")) and ":" not in p and ".." not in p.split("/")


def _required_function(tree: ast.Module, hook: Hook) -> list[str]:
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == hook.function]
    if not found:
        return [f"hook '{hook.name}' must define a top-level function {hook.contract}"]
    fn = found[-1]
    positional = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    if fn.args.vararg is None and len(positional) < len(hook.args):
        return [f"line {fn.lineno}: {hook.function}() takes {len(positional)} argument(s) but is called with "
                f"{len(hook.args)} ({', '.join(hook.args)}); expected {hook.contract}"]
    required = len(positional) - len(fn.args.defaults)
    if required > len(hook.args):
        return [f"line {fn.lineno}: {hook.function}() requires {required} arguments but is called with "
                f"{len(hook.args)} ({', '.join(hook.args)})"]
    return []


def check_code(code: str, hook: str) -> list[str]:
    """Return the reasons ``code`` may not fill notebook hook ``hook``; an empty list means it may.

    Args:
        code: Python source written for the hook cell.
        hook: one of :data:`HOOKS` (``model``, ``loss``, ``augment``, ``sampler``).
    """
    if hook not in HOOKS:
        return [f"unknown hook '{hook}'; known: {', '.join(sorted(HOOKS))}"]
    if not code or not code.strip():
        return [f"hook '{hook}' code is empty; it must define {HOOKS[hook].contract}"]
    if len(code) > MAX_CODE_CHARS:
        return [f"hook '{hook}' code is {len(code)} characters; the limit is {MAX_CODE_CHARS}"]
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return [f"syntax error at line {exc.lineno}, column {exc.offset}: {exc.msg}"]
    checker = _Checker()
    checker.visit(tree)
    return checker.problems + _required_function(tree, HOOKS[hook])
