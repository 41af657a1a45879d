"""Shared fixtures: tiny synthetic datasets written in real on-disk formats (seconds to make)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("MPLBACKEND", "Agg")
# the on-disk image cache and the weights cache of the tests never touch the user's folders
if "CLINAGENT_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["CLINAGENT_CACHE_DIR"] = tempfile.mkdtemp(prefix="clinagent-test-cache-")
    # an empty model cache: weights the developer has downloaded never change what the tests see
    os.environ["HF_HUB_CACHE"] = os.path.join(os.environ["CLINAGENT_CACHE_DIR"], "hf-hub")
    os.environ["TORCH_HOME"] = os.path.join(os.environ["CLINAGENT_CACHE_DIR"], "torch")

#: recipe fields fixed in end-to-end tests so a whole iteration takes seconds
FAST = {"training.max_epochs": 3, "data.image_size": 16, "data.batch_size": 32}


@pytest.fixture(scope="session")
def drain_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Chest-radiograph-like binary data, 16 px, with a drain column correlated with the label.

    400 images and correlation 0.7 leave enough drain-bearing negatives and drain-free positives in
    validation (about 12 each) for the within-label dependence to be measured."""
    from clinagent_lab.data.synth import generate

    return generate("chest_drain", tmp_path_factory.mktemp("drain"), seed=0, n=400, image_size=16,
                    correlation=0.7)


@pytest.fixture(scope="session")
def derm_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from clinagent_lab.data.synth import generate

    return generate("dermoscopy", tmp_path_factory.mktemp("derm"), seed=0, n=96, image_size=16)


@pytest.fixture(scope="session")
def e2e_session(drain_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """One whole offline session (two iterations, then the test split once), shared by the e2e tests."""
    from clinagent_lab.agent.engine import Engine

    out = tmp_path_factory.mktemp("session")
    engine = Engine.create("pneumothorax on chest X-rays; don't let the model cheat by looking at chest drains",
                           drain_data, out, max_iterations=2, iteration_minutes=4, recipe_overrides=FAST)
    events: list[dict] = []
    engine.run(on_event=events.append)
    return engine, events
