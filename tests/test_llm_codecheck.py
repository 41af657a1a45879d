"""Static checks on hook code: good code for every hook passes (and runs), forbidden code is refused."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from clinagent_lab.llm.codecheck import HOOKS, check_code

GOOD = {
    "model": """
        import torch
        from torch import nn

        def build_model(recipe, num_classes, in_channels):
            width = int(8 * recipe.get("model", {}).get("width", 1.0))
            return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))
    """,
    "loss": """
        import torch
        import torch.nn.functional as F

        def custom_loss(logits, labels):
            ce = F.cross_entropy(logits, labels, reduction="none")
            pt = torch.exp(-ce)
            return ((1 - pt) ** 2 * ce).mean()
    """,
    "augment": """
        import albumentations as A

        def extra_transforms(train):
            if not train:
                return []
            return [A.GaussNoise(p=0.2), A.CoarseDropout(p=0.1)]
    """,
    "sampler": """
        import numpy as np

        def sample_weights(labels, groups):
            keys = [f"{l}-{g}" for l, g in zip(labels, groups)]
            uniq, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
            return 1.0 / counts[inverse]
    """,
}


def _src(code: str) -> str:
    return textwrap.dedent(code).strip() + "\n"


def _run(code: str) -> dict:
    namespace: dict = {}
    exec(compile(code, "<hook>", "exec"), namespace)  # the test runs accepted code to prove it is real code
    return namespace


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_good_code_passes_and_works(hook):
    code = _src(GOOD[hook])
    assert check_code(code, hook) == []
    ns = _run(code)
    fn = ns[HOOKS[hook].function]
    if hook == "model":
        import torch

        model = fn({"model": {"width": 1.0}}, 3, 1)
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    elif hook == "loss":
        import torch

        logits = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
        labels = torch.tensor([0, 1])
        value = fn(logits, labels)
        ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
        assert value.ndim == 0
        assert float(value) == pytest.approx(float(((1 - torch.exp(-ce)) ** 2 * ce).mean()))
    elif hook == "augment":
        assert fn(False) == [] and len(fn(True)) == 2
    else:
        w = fn(np.array([0, 0, 0, 1]), np.array(["a", "a", "b", "a"]))
        np.testing.assert_allclose(w, [0.5, 0.5, 1.0, 1.0])


LOSS_TAIL = "\ndef custom_loss(logits, labels):\n    return logits.mean()\n"

FORBIDDEN = [
    ("import subprocess", "subprocess"),
    ("import subprocess as sp", "subprocess"),
    ("from subprocess import run", "subprocess"),
    ("import os\nos.system('ls')", "os.system"),
    ("import os\nos.popen('ls')", "os.popen"),
    ("import os\nos.execv('/bin/sh', [])", "os.execv"),
    ("import os\nos.spawnl(0, 'x')", "os.spawnl"),
    ("import os\nos.fork()", "os.fork"),
    ("from os import system", "os.system"),
    ("import os as o\no.system('ls')", "os.system"),
    ("import os\nkey = os.environ['OPENAI_API_KEY']", "os.environ"),
    ("import socket", "socket"),
    ("import urllib.request", "urllib"),
    ("from http.client import HTTPConnection", "http"),
    ("import requests", "requests"),
    ("import httpx", "httpx"),
    ("import ftplib", "ftplib"),
    ("import smtplib", "smtplib"),
    ("import multiprocessing", "multiprocessing"),
    ("import ctypes", "ctypes"),
    ("import shutil\nshutil.rmtree('x')", "shutil"),
    ("eval('1+1')", "eval()"),
    ("exec('x = 1')", "exec()"),
    ("compile('1', 'f', 'eval')", "compile()"),
    ("m = __import__('os')", "__import__"),
    ("import importlib\nimportlib.import_module('os')", "importlib"),
    ("import sys\nsys.modules['torch'] = None", "sys.modules"),
    ("g = globals()", "globals()"),
    ("import torch\nsetattr(torch, 'load', None)", "setattr()"),
    ("import torch\ntorch.load = print", "monkey-patches"),
    ("open('/tmp/x.txt', 'w').write('a')", "writing"),
    ("open('../escape.txt', 'a')", "writing"),
    ("open(name, 'w')", "writing"),
    ("f = open('x.txt', mode=m)", "not a literal"),
    ("from pathlib import Path\nPath('/etc/x').write_text('a')", "write_text"),
    ("from pathlib import Path\nPath('x').write_bytes(b'a')", "write_bytes"),
    ("split = 'test'", "'test'"),
    ("rows = table[table['split'] == 'test']", "'test'"),
    ("loader = dm.test_dataloader()", "test_dataloader"),
    ("dm = make(include_test=True)", "include_test"),
    ("x = ().__class__.__subclasses__()", "__subclasses__"),
    ("breakpoint()", "breakpoint()"),
]


@pytest.mark.parametrize("snippet, expected", FORBIDDEN)
def test_forbidden_code_is_refused_with_reason(snippet, expected):
    problems = check_code(snippet + "\n" + LOSS_TAIL, "loss")
    assert problems, f"accepted: {snippet!r}"
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("line ") for p in problems)


def test_reason_names_the_line():
    code = "import torch\n\nimport subprocess\n" + LOSS_TAIL
    assert check_code(code, "loss") == [
        "line 3: imports 'subprocess' (starts programs); not allowed in hook code"]


@pytest.mark.parametrize("snippet", [
    "with open('notes.txt', 'w') as fh:\n    fh.write('ok')",
    "with open('out/metrics_extra.json', 'a') as fh:\n    pass",
    "data = open('/etc/hostname').read()",
    "import os\np = os.path.join('a', 'b')",
    "name = 'testing_ground_truth_free'",
    "import torch\nmodel = torch.nn.Linear(2, 2)\nmodel.weight = None",
])
def test_allowed_code(snippet):
    assert check_code(snippet + "\n" + LOSS_TAIL, "loss") == []


def test_syntax_error_reports_line():
    problems = check_code("def custom_loss(logits, labels):\n    return (\n", "loss")
    assert len(problems) == 1 and problems[0].startswith("syntax error at line")


def test_required_function_name_and_arity():
    assert check_code("def loss(logits, labels):\n    return 0\n", "loss") == [
        "hook 'loss' must define a top-level function custom_loss(logits, labels) -> torch.Tensor (a scalar)"]
    problems = check_code("def build_model(recipe):\n    return None\n", "model")
    assert len(problems) == 1 and "takes 1 argument(s) but is called with 3" in problems[0]
    nested = "def outer():\n    def sample_weights(labels, groups):\n        return labels\n"
    assert any("must define a top-level function sample_weights" in p for p in check_code(nested, "sampler"))


def test_unknown_hook_and_empty_code():
    assert check_code("x = 1", "trainer") == ["unknown hook 'trainer'; known: augment, loss, model, sampler"]
    assert "empty" in check_code("   ", "loss")[0]
