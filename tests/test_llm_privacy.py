"""Privacy: what reaches the LLM server never holds file names, ids, metadata values, paths or pixels."""

from __future__ import annotations

import json
import re

import pytest

from clinagent_lab.records import Annotation, Iteration
from clinagent_lab.data.fingerprint import compute_fingerprint
from clinagent_lab.llm.parser import parse_with_llm
from clinagent_lab.llm.redact import (
    Redactor,
    fingerprint_payload,
    metrics_payload,
    privacy_payload,
    redact,
    scrub_secrets,
    sensitive_terms,
)
from clinagent_lab.llm.refiner import LLMRefiner
from clinagent_lab.recipe import Recipe

try:
    from llm_fixtures import *  # noqa: F403
    from llm_fixtures import synthetic_dataset
except ImportError:  # tests collected as a package
    from tests.llm_fixtures import *  # noqa: F403
    from tests.llm_fixtures import synthetic_dataset

pytestmark = pytest.mark.timeout(120)

_BLOB = re.compile(r"[A-Za-z0-9+/=]{64,}")
_ARRAY = re.compile(r"(?:-?\d+(?:\.\d+)?\s*,\s*){15,}-?\d+")


def _forbidden_terms(ds) -> list[str]:
    table = ds.table
    terms = {str(ds.root), *table["image_id"], *table["group_id"]}
    for p in table["path"]:
        terms.update({p, p.rsplit("/", 1)[-1], p.rsplit("/", 1)[-1].split(".")[0]})
    for column in ("site", "referrer"):
        terms.update(table[column])
    return sorted(terms)


def test_nothing_private_reaches_the_server(tmp_path, fake_llm, audit_log):
    root = tmp_path / "HOSPITALROOT_private"
    ds = synthetic_dataset(root)
    fp = compute_fingerprint(ds, split_rule="given by the dataset", leakage_checked=True)
    # the fingerprint's free text does mention private things; it must not be forwarded
    assert any("SITEZEBRA1" in w for w in fp.warnings) and fp.root == str(root)
    redactor = Redactor.for_dataset(ds)
    ids = list(ds.table["image_id"])
    request = (f"detect pneumothorax in {root}/imgs, ignore chest drains; image {ids[0]} from SITEZEBRA2 is "
               f"mislabelled")
    history = [Iteration(index=0, status="ok", recipe=Recipe(task_type="binary_classification",
                                                             classes=ds.classes),
                         rationale=f"baseline; note {ids[1]} looked odd", idea="baseline",
                         decision="baseline",
                         val_metrics={"auroc": 0.81, "per_sample_scores": [0.1] * 40,
                                      "by_site": {"SITEZEBRA0": 0.7, "SITEZEBRA1": 0.9},
                                      "roc_curve": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.8, 1.0]}},
                         selection_value=0.81)]
    crashed = Iteration(index=1, status="crash", recipe=history[0].recipe.model_copy(
        update={"custom_code": {"loss": "def custom_loss(logits, labels):\n    return logits.sum()\n"}}),
        rationale="custom loss", idea="custom_loss", decision="failed",
        error={"ename": "FileNotFoundError",
               "evalue": f"{ds.table.path[2]} (patient {ds.table.group_id[2]})"})
    annotations = [Annotation(kind="note", text=f"case {ids[4]} of DrHouseman1 shows a drain, see "
                              f"{ds.table.path[4]}"),
                   Annotation(kind="group_fpr_bound", text="keep false alarms low at SITEZEBRA0",
                              value={"confounder": "site", "group": "SITEZEBRA0", "max_fpr": 0.1})]
    pixels = ",".join(str(int(v)) for v in ds.read_image(0).ravel())
    traceback = (f"Traceback (most recent call last):\n  File \"{root}/loader.py\", line 3, in read\n"
                 f"FileNotFoundError: {ds.table.path[5]} for {ids[5]}\narray([{pixels}])\n"
                 f"data:image/png;base64,{'iVBORw0KGgo' * 12}")

    fake_llm.push_json(spec_reply())
    fake_llm.push_json({"changes": {"data.sampler": "group_balanced"}, "custom_code": {},
                        "rationale": "balance groups", "idea": "group_balance"})
    fake_llm.push_json({"changes": {}, "custom_code": {"loss": "import torch.nn.functional as F\n\n"
                                                      "def custom_loss(logits, labels):\n"
                                                      "    return F.cross_entropy(logits, labels)\n"},
                        "rationale": "use cross entropy", "idea": "fix"})
    client = make_client(fake_llm, audit_log)
    spec = parse_with_llm(request, fp, client, redactor=redactor)
    from clinagent_lab.plan.refiner import RefineContext

    ctx = RefineContext(spec=spec, fingerprint=fp, history=[*history, crashed], best=history[0],
                        current=history[0].recipe, annotations=annotations, tried_ideas={"baseline"})
    refiner = LLMRefiner(client, StubFallback(), redactor=redactor)
    assert refiner.propose(ctx).idea == "group_balance"
    assert refiner.repair(ctx, crashed, traceback).idea == "custom_loss"
    assert len(fake_llm.requests) == 3

    bodies = fake_llm.request_texts()
    for term in _forbidden_terms(ds):
        for body in bodies:
            assert term not in body, f"{term!r} left the machine"
    for body in bodies:
        assert "HOSPITALROOT" not in body and str(tmp_path) not in body
        assert not _BLOB.search(body), _BLOB.search(body).group(0)[:80]
        assert not _ARRAY.search(body), _ARRAY.search(body).group(0)[:80]
        assert "per_sample_scores" not in body
    # what is useful still went: counts, association figures, metric summaries, the error type
    repair_payload = json.loads(fake_llm.requests[2]["messages"][-1]["content"])
    assert repair_payload["dataset"]["class_counts"] == fp.class_counts
    assert repair_payload["dataset"]["associations"][0]["column"] == "site"
    assert repair_payload["history"][0]["val_metrics"]["auroc"] == 0.81
    assert "FileNotFoundError" in repair_payload["traceback"]
    # the audit holds exactly what was sent (it stays on the machine) and no key
    assert FAKE_KEY not in json.dumps(list(audit_log))


def test_redactor_rules():
    r = Redactor(paths=["/data/chest"], ids=["PAT000123", "7"])
    text = ('File "/data/chest/train/PAT000123_1.png" for PAT000123 and 7 images; '
            'File "/usr/lib/python3.11/site-packages/torch/nn/functional.py", line 3; '
            'see /home/alice/notes.txt and https://internal.example/x?id=PAT000123')
    out = r(text)
    assert out == ('File "<data-path>" for <id> and 7 images; File "torch/nn/functional.py", line 3; '
                   'see <path> and <url>')
    assert redact("/tmp/ipykernel_1/123.py line 4") == "<path>/123.py line 4"
    assert redact("read scan_0001.DCM failed") == "read <file> failed"


def test_scrub_secrets(monkeypatch):
    monkeypatch.setenv("MYPROVIDER_API_KEY", "plainvalue-without-prefix-42")
    text = "keys: sk-ant-abc123456789xyz, Bearer abcdefghijk123, plainvalue-without-prefix-42"
    assert scrub_secrets(text) == "keys: <secret>, <secret>, <secret>"


def test_fingerprint_payload_keeps_only_aggregates(tmp_path):
    ds = synthetic_dataset(tmp_path / "d")
    fp = compute_fingerprint(ds, split_rule="given by the dataset", leakage_checked=True)
    payload = fingerprint_payload(fp, Redactor.for_dataset(ds))
    assert "root" not in payload and "content_hash" not in payload and "warnings" not in payload
    assert payload["n_warnings"] == len(fp.warnings)
    assert payload["class_counts"] == fp.class_counts and payload["n_images"] == 12
    assert all("note" not in a for a in payload["associations"])
    assert {a["column"] for a in payload["associations"]} == {"site", "referrer", "chest_drain"}


def test_sensitive_terms_cover_ids_files_and_values(tmp_path):
    ds = synthetic_dataset(tmp_path / "d")
    terms = set(sensitive_terms(ds))
    assert {"IMGSECRET000X", "PATIENTQZ000", "scanfile_000_secret.png", "scanfile_000_secret", "SITEZEBRA0",
            "DrHouseman3"} <= terms
    assert "normal" not in terms and "site" not in terms


def test_metrics_payload_drops_arrays_and_deep_structures():
    red = Redactor(ids=["PATIENTX1"])
    metrics = {"auroc": 0.912345678, "n": 10, "ok": True, "curve": [0.1, 0.2], "scores": list(range(100)),
               "groups": {"PATIENTX1": 0.5, "b": {"c": {"d": {"e": 1, "f": {"g": 2}}}}}, "note": "fine"}
    expected = {"auroc": 0.912346, "n": 10, "ok": True, "groups": {"<id>": 0.5, "b": {"c": {"d": {"e": 1}}}},
                "note": "fine"}
    assert metrics_payload(metrics, red) == expected


def test_privacy_payload_masks_weights_path():
    recipe = Recipe(task_type="binary_classification", classes=["a", "b"])
    recipe = recipe.model_copy(update={"model": recipe.model.model_copy(
        update={"pretrained_path": "/models/hospital/resnet.pth"})})
    payload = privacy_payload(recipe=recipe)
    assert payload["current_recipe"]["model"]["pretrained_path"] == "<local weights file>"
