"""The frozen evaluator entry point on prediction tables."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from clinagent_lab.errors import DataValidationError, UnknownNameError
from clinagent_lab.evaluation import evaluate
from clinagent_lab.evaluation.evaluate import EVALUATOR_VERSION, evaluate_predictions, evaluator_hash
from clinagent_lab.recipe import EvalConfig


def _binary_table(n=300, seed=0, shortcut=0.4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    drain = (rng.random(n) < np.where(y == 1, 0.7, 0.3)).astype(float)
    drain[:4] = np.nan
    p = np.clip(0.3 * y + shortcut * np.nan_to_num(drain) + rng.normal(0, 0.2, n), 0.001, 0.999)
    return pd.DataFrame({"image_id": [f"im{i}" for i in range(n)], "label": y, "prob_normal": 1 - p,
                         "prob_pneumothorax": p, "chest_drain": drain, "site": rng.integers(0, 3, n),
                         "patient_id": np.arange(n) // 3})


def _multiclass_table(n=300, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    df = pd.DataFrame({"image_id": range(n), "label": y, "ruler": rng.integers(0, 2, n)})
    for k, c in enumerate(["bcc", "mel", "nv"]):
        df[f"prob_{c}"] = p[:, k]
    return df


CLASSES = ["normal", "pneumothorax"]


def test_binary_evaluation_json_and_selection_by_worst_group():
    df = _binary_table()
    cfg = EvalConfig(primary_metric="sensitivity_at_specificity", metric_params={"specificity": 0.8},
                     operating_point="at_specificity", operating_value=0.8, bootstrap=50,
                     selection_metric="worst_group_auroc")
    out = evaluate_predictions(df, CLASSES, cfg, confounders={"chest_drain": "chest_drain", "site": "site"},
                               n_permutations=20)
    json.dumps(out, allow_nan=False)
    assert out["auroc"] == pytest.approx(roc_auc_score(df.label, df.prob_pneumothorax), abs=1e-6)
    assert out["primary_metric"] == "sensitivity_at_specificity" and out["specificity"] >= 0.8
    drain = out["confounders"]["chest_drain"]
    assert drain["n_missing"] == 4 and drain["threshold"] == out["threshold"]
    assert drain["reliance"]["excess_fpr"] > 0
    assert out["confounders"]["site"]["groups"] == {str(k): int(v) for k, v in
                                                    df.site.value_counts().sort_index().items()}
    assert out["selection_metric"] == "worst_group_auroc"
    assert out["selection_value"] == drain["worst_group_auroc"]
    assert out["selection_confounder"] == "chest_drain"
    ci = out["ci"]["primary"]
    assert ci["resampled"] == "patients" and ci["low"] <= out["primary"] <= ci["high"]
    assert out["calibration"]["ece"] is not None
    assert out["evaluator_version"] == EVALUATOR_VERSION and out["evaluator_hash"] == evaluator_hash()


def test_selection_defaults_to_primary_and_test_threshold_is_reused():
    df = _binary_table(seed=2)
    val = evaluate_predictions(df, CLASSES, EvalConfig(bootstrap=0), n_permutations=0)
    assert val["selection_metric"] == "auroc" and val["selection_value"] == val["auroc"]
    assert "ci" not in val
    test = evaluate_predictions(_binary_table(seed=3), CLASSES, EvalConfig(bootstrap=0),
                                threshold=val["threshold"], n_permutations=0)
    assert test["threshold"] == val["threshold"]


def test_group_selection_without_confounder_falls_back_with_note():
    out = evaluate_predictions(_binary_table(), CLASSES,
                               EvalConfig(bootstrap=0, selection_metric="group_balanced_auroc"))
    assert out["selection_metric"] == "auroc" and out["selection_value"] == out["auroc"]
    assert "no confounder column" in out["selection_note"]


def test_multiclass_with_and_without_target_class():
    df = _multiclass_table()
    classes = ["bcc", "mel", "nv"]
    out = evaluate_predictions(df, classes, EvalConfig(bootstrap=0), confounders={"ruler": "ruler"},
                               n_permutations=0)
    assert out["primary"] == out["auroc_macro"]
    assert "skipped" in out["confounders"]["ruler"]["notes"][0]
    cfg = EvalConfig(bootstrap=0, metric_params={"class": "mel"}, selection_metric="group_balanced_auroc")
    out = evaluate_predictions(df, classes, cfg, confounders={"ruler": "ruler"}, n_permutations=0)
    assert out["auroc"] == pytest.approx(roc_auc_score(df.label == 1, df.prob_mel), abs=1e-6)
    groups = out["confounders"]["ruler"]["groups"]
    assert groups == {"0": int((df.ruler == 0).sum()), "1": int(df.ruler.sum())}
    assert out["selection_value"] == out["confounders"]["ruler"]["group_balanced_auroc"]


def test_bad_tables_and_names():
    df = _binary_table()
    with pytest.raises(DataValidationError, match="prob_pneumothorax"):
        evaluate_predictions(df.drop(columns="prob_pneumothorax"), CLASSES, EvalConfig(bootstrap=0))
    with pytest.raises(DataValidationError, match="hospital"):
        evaluate_predictions(df, CLASSES, EvalConfig(bootstrap=0), confounders={"site": "hospital"})
    with pytest.raises(UnknownNameError, match="selection metric"):
        evaluate_predictions(df, CLASSES, EvalConfig(bootstrap=0, selection_metric="vibes"))


def test_evaluator_hash_tracks_source(tmp_path, monkeypatch):
    first = evaluator_hash()
    assert first == evaluator_hash() and len(first) == 64
    # a copy of the package with one byte changed hashes differently
    import shutil
    from pathlib import Path

    src = Path(evaluate.__file__).parent
    copy = tmp_path / "evaluation"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(evaluate, "__file__", str(copy / "evaluate.py"))
    assert evaluator_hash() == first
    (copy / "metrics.py").write_text((copy / "metrics.py").read_text() + "\n# changed\n")
    assert evaluator_hash() != first
