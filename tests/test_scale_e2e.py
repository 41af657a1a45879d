"""End to end with a pretrained weights file and the on-disk image cache: recorded in session and report."""

from __future__ import annotations

import hashlib
import json

import pytest

from clinagent_lab.agent.engine import Engine
from clinagent_lab.data.cache import cache_entries
from tests.conftest import FAST
from tests.test_models_weights import _timm_state

pytestmark = pytest.mark.slow


def test_pretrained_file_and_cache_through_a_whole_session(derm_data, tmp_path):
    from safetensors.torch import save_file

    weights = tmp_path / "lesions.safetensors"
    save_file(_timm_state(7), str(weights))
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    before = {e["key"] for e in cache_entries()}
    engine = Engine.create("classify dermoscopic lesions", derm_data, tmp_path / "session", max_iterations=1,
                           iteration_minutes=3,
                           recipe_overrides={**FAST, "training.max_epochs": 1, "model.architecture": "timm:test_resnet",
                                             "model.pretrained": str(weights), "model.pretrained_sha256": sha})
    session = engine.run()
    it = session.iterations[0]
    assert it.status == "ok", it.error
    assert (it.recipe.model.pretrained, it.recipe.model.pretrained_sha256) == (str(weights), sha)
    recorded = json.loads((tmp_path / "session" / "session.json").read_text())
    assert recorded["iterations"][0]["recipe"]["model"]["pretrained_sha256"] == sha
    assert session.final_test is not None and session.test_reads == 1
    new = [e for e in cache_entries() if e["key"] not in before]
    assert len(new) == 3  # train and val before the iteration, test before the final evaluation
    html = engine.export_report().read_text(encoding="utf-8")
    assert sha in html and "lesions.safetensors" in html


def test_a_baseline_that_timed_out_before_its_first_epoch_is_not_run_again(derm_data, tmp_path):
    from clinagent_lab.records import Iteration

    engine = Engine.create("classify dermoscopic lesions", derm_data, tmp_path / "s", max_iterations=3,
                           iteration_minutes=2, recipe_overrides=FAST)
    baseline = engine.propose()
    assert baseline.idea == "baseline"
    engine.session.iterations.append(Iteration(index=1, status="timeout", recipe=baseline.recipe,
                                               rationale=baseline.rationale, idea="baseline"))
    engine.session.proposal = None
    nxt = engine.propose()
    assert nxt.idea == "first_epoch_fit_1" and nxt.recipe != baseline.recipe
    assert nxt.recipe.data.max_train_samples is not None and "before its first epoch" in nxt.rationale
