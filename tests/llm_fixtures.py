"""Fixtures and builders shared by the ``test_llm_*`` files (import them with ``from llm_fixtures import *``).

The LLM is reached through litellm's real code path, pointed at :class:`FakeLLMServer` on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_llm_server import FakeLLMServer, Reply  # noqa: E402

from clinagent_lab.records import Annotation, Iteration  # noqa: E402
from clinagent_lab.data.base import ColumnAssociation, DatasetFingerprint, LoadedDataset  # noqa: E402
from clinagent_lab.llm.audit import MemoryAudit  # noqa: E402
from clinagent_lab.llm.client import LLMClient, LLMConfig  # noqa: E402
from clinagent_lab.recipe import Recipe, RecipePatch  # noqa: E402

__all__ = ["FakeLLMServer", "Reply", "fake_llm", "llm_env", "audit_log", "make_client", "make_fingerprint",
           "make_context", "StubFallback", "good_model_code", "MODEL", "spec_reply", "FAKE_KEY"]

MODEL = "openai/fake-model"
FAKE_KEY = "sk-test-0123456789abcdef"

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture
def llm_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """Provider key in the environment, as a user would set it; no CLINAGENT_MODEL leaking in."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.delenv("CLINAGENT_MODEL", raising=False)
    return FAKE_KEY


@pytest.fixture
def fake_llm(llm_env: str):
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def audit_log() -> MemoryAudit:
    return MemoryAudit()


def make_client(server: FakeLLMServer | None, audit: Any = None, **config: Any) -> LLMClient:
    """A client for the fake server with fast backoff; ``config`` overrides LLMConfig fields."""
    base = {"model": MODEL, "api_base": server.api_base if server is not None else None, "timeout_s": 5.0,
            "backoff_s": 0.01, "backoff_max_s": 0.05, "max_retries": 2, "max_invalid_retries": 2}
    base.update(config)
    return LLMClient(LLMConfig(**base), audit)


def make_fingerprint(root: str = "/nonexistent/data") -> DatasetFingerprint:
    return DatasetFingerprint(
        format="csv_manifest", root=root, task_type="binary_classification",
        classes=["normal", "pneumothorax"],
        n_images=40, class_counts={"normal": 28, "pneumothorax": 12},
        split_counts={"train": {"normal": 18, "pneumothorax": 8}, "val": {"normal": 5, "pneumothorax": 2},
                      "test": {"normal": 5, "pneumothorax": 2}},
        splits_given=True, split_rule="given by the dataset",
        image_sizes={"median_height": 16, "median_width": 16},
        channels=[1], group_column="patient_id", n_groups=20, metadata_columns=["chest_drain", "site"],
        associations=[ColumnAssociation(column="chest_drain", kind="binary", auroc=0.86, cramers_v=0.7,
                                        p_value=0.001, flagged=True)],
        imbalance_ratio=18 / 8)


def make_context(fingerprint: DatasetFingerprint | None = None, *, history: list[Iteration] | None = None,
                 annotations: list[Annotation] | None = None, tried: set[str] | None = None,
                 custom_code: dict[str, str] | None = None):
    from clinagent_lab.plan.refiner import RefineContext
    from clinagent_lab.spec import Confounder, TaskSpec

    fp = fingerprint or make_fingerprint()
    spec = TaskSpec(request="detect pneumothorax", objective="detect pneumothorax",
                    classes=["normal", "pneumothorax"], target_classes=["pneumothorax"],
                    modality="chest_xray",
                    confounders=[Confounder(name="chest_drain", column="chest_drain", action="mitigate")])
    recipe = Recipe(task_type="binary_classification", classes=["normal", "pneumothorax"],
                    custom_code=dict(custom_code or {}))
    history = history or []
    best = next((it for it in history if it.decision in ("baseline", "kept")), None)
    return RefineContext(spec=spec, fingerprint=fp, history=history, best=best, current=recipe,
                         annotations=annotations or [], tried_ideas=set(tried or set()))


class StubFallback:
    """A minimal offline refiner (the protocol) whose answers are recognisable in assertions."""

    name = "offline"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def propose(self, ctx) -> RecipePatch | None:
        self.calls.append("propose")
        return RecipePatch(changes={"optim.lr": 0.0005}, rationale="halve the learning rate", idea="lower_lr")

    def repair(self, ctx, iteration, traceback) -> RecipePatch | None:
        self.calls.append("repair")
        return RecipePatch(changes={"custom_code": {}}, rationale="drop custom code", idea="drop_custom_code")


def good_model_code(hidden: int = 8) -> str:
    return (
        "import torch\n"
        "from torch import nn\n\n"
        "def build_model(recipe, num_classes, in_channels):\n"
        f"    return nn.Sequential(nn.Conv2d(in_channels, {hidden}, 3, padding=1), nn.ReLU(),\n"
        f"                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear({hidden}, num_classes))\n"
    )


def spec_reply(**overrides: Any) -> dict[str, Any]:
    body = {"request": "ignored", "objective": "detect pneumothorax on chest x-rays",
            "task_type": "binary_classification", "modality": "chest_xray",
            "classes": ["normal", "pneumothorax"], "target_classes": ["pneumothorax"],
            "primary_metric": {"name": "sensitivity_at_specificity", "direction": "maximize",
                               "params": {"specificity": 0.8}},
            "risk_preference": "sensitivity",
            "confounders": [{"name": "chest_drain", "column": "chest_drain", "action": "mitigate"}],
            "assumptions": ["specificity 0.8 chosen as the operating point"], "questions": []}
    body.update(overrides)
    return body


def synthetic_dataset(root: Path, n: int = 12) -> LoadedDataset:
    """A tiny dataset whose ids, file names and metadata values are distinctive strings to search for."""
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"IMGSECRET{i:03d}X" for i in range(n)]
    table = pd.DataFrame({
        "image_id": ids,
        "label": [i % 2 for i in range(n)],
        "split": ["train"] * (n - 4) + ["val", "val", "test", "test"],
        "group_id": [f"PATIENTQZ{i // 2:03d}" for i in range(n)],
        "path": [str(root / "imgs" / f"scanfile_{i:03d}_secret.png") for i in range(n)],
        "site": [f"SITEZEBRA{i % 3}" for i in range(n)],
        "referrer": [f"DrHouseman{i % 4}" for i in range(n)],
        "chest_drain": [int(i % 2 == 0) for i in range(n)],
    })
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(n, 8, 8, 1), dtype=np.uint8)
    return LoadedDataset(format="csv_manifest", root=root, task_type="binary_classification",
                         classes=["normal", "pneumothorax"], table=table, read_image=lambda i: pixels[i],
                         metadata_columns=["site", "referrer", "chest_drain"],
                         warnings=[f"could not read {table.path[3]} (image {ids[3]}, site SITEZEBRA1)"],
                         source={"group_column": "patient_id", "splits_given": True})


def request_json(server: FakeLLMServer, index: int) -> dict[str, Any]:
    """The JSON payload of the user message of request ``index``."""
    content = server.requests[index]["messages"][-1]["content"]
    return json.loads(content)
