"""The detection template notebook: its source is built here, and it runs end to end through papermill.

Regenerate the packaged template after editing the cells below with::

    python tests/test_detection_notebook.py
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "clinagent_lab" / "notebooks" / "templates" / "detection.ipynb"

PARAMETERS = '''\
data_path = ""        # dataset folder or file
data_format = ""      # registered format name; "" to auto-detect
splits_path = ""      # CSV (image_id, split) frozen by the engine; the test split is never read here
output_dir = "."      # metrics.json, val_predictions, model.ckpt and events.jsonl go here
events_path = ""      # JSON-lines progress events; "" for output_dir/events.jsonl
seed = 0
recipe = {}           # clinagent_lab.recipe.Recipe as a dict
spec = {}             # clinagent_lab.spec.TaskSpec as a dict
max_epochs = None     # overrides recipe["training"]["max_epochs"] when set
time_budget_s = None  # Lightning max_time guard (seconds)'''

CELLS: list[tuple[str, list[str], str]] = [
    ("markdown", [], """\
# Detection iteration

One iteration of the clinagent-lab loop for box detection (e.g. wrist fractures on radiographs): load the
data with the frozen split, build the detector the Recipe describes, train it with PyTorch Lightning
(teacher-student pseudo-labelling when only some images have boxes and the Recipe asks for it), and evaluate
it on the **validation** split with the frozen evaluator (mAP@50 on the box-annotated images, sensitivity at
fixed false positives per image, image-level AUROC). Progress goes to `events.jsonl` through
`clinagent_lab.notebooks.progress.ProgressCallback`. The test split is never read here. Rerun with papermill,
e.g. `papermill iteration.ipynb out.ipynb -p seed 1`."""),
    ("code", ["parameters"], PARAMETERS),
    ("code", [], """\
import lightning as L

from clinagent_lab.notebooks.runtime import prepare_run
from clinagent_lab.tasks.detection import fit, save_box_figure

run = prepare_run(recipe=recipe, spec=spec, seed=seed, output_dir=output_dir, events_path=events_path,
                  max_epochs=max_epochs, time_budget_s=time_budget_s)
R, S = run.recipe, run.spec
print(f"task: {R.task_type}, detector: {R.model.architecture}, {R.data.image_size} px, seed: {R.seed}, "
      f"epochs: {R.training.max_epochs}, supervision: {R.supervision.kind}, "
      f"pseudo labels: {R.supervision.pseudo_label}")
for field, reason in R.reasons.items():
    print(f"  {field}: {reason}")"""),
    ("markdown", [], "## Data (frozen split)"),
    ("code", ["frozen"], """\
dataset = run.load_data(data_path, data_format, splits_path)
run.data_summary(dataset)"""),
    ("markdown", [], """\
## Custom code hooks

Cells below are empty unless the agent wrote code for them. Each is checked before it runs and must define one
function: `build_model(recipe, num_classes, in_channels)` returning a torchvision-style detector
(`num_classes` counts the background), or `extra_transforms(train)` returning albumentations transforms that
keep boxes right."""),
    ("code", ["hook:model"], "# hook: model (none)"),
    ("code", ["hook:augment"], "# hook: augment (none)"),
    ("markdown", [], "## Model and training"),
    ("code", [], """\
hooks = run.collect_hooks(globals())
datamodule = run.backend.make_datamodule(dataset, R, S, **hooks.data)
module = run.backend.make_module(R, dataset, S, datamodule=datamodule, **hooks.model)
print(module.__class__.__name__, f"{sum(p.numel() for p in module.parameters()):,} parameters,",
      f"box classes: {module.box_classes}, target: {module.target_class}")
print("training images by supervision:", datamodule.supervision_summary())"""),
    ("code", [], """\
trainer = L.Trainer(**run.trainer_kwargs())  # with the ProgressCallback and the val_map50 checkpoint
module = fit(module, datamodule, trainer)     # teacher -> pseudo labels -> student when pseudo_label is on
module = run.best_module(module, trainer)"""),
    ("markdown", [], "## Frozen validation evaluation"),
    ("code", ["frozen"], """\
val_predictions = run.backend.predict(module, datamodule, "val")
val_metrics = run.backend.evaluate(val_predictions, R, S, dataset)
run.save_outputs(trainer, val_predictions, val_metrics)
run.show_metrics(val_metrics)
print("AP@50 per class:", {k: v for k, v in val_metrics["ap50_per_class"].items() if v is not None})
print("sensitivity at false positives per image:", val_metrics["sensitivity_at_fp"])"""),
    ("markdown", [], "## Figures\n\nGround-truth boxes in green, predicted boxes (score >= 0.3) in red."),
    ("code", [], """\
from IPython.display import Image

Image(filename=str(save_box_figure(dataset, val_predictions, run.output_dir / "val_boxes.png")))"""),
]


def build_template() -> nbformat.NotebookNode:
    """The detection template as a notebook object (every cell tagged ``clinagent`` plus its own tags)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for k, (kind, tags, source) in enumerate(CELLS):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(make(source, metadata={"tags": ["clinagent", *tags]}, id=f"detection-{k:02d}"))
    return nb


def _strip_ids(nb: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def test_packaged_template_is_the_built_one() -> None:
    packaged = nbformat.read(TEMPLATE, as_version=4)
    nbformat.validate(packaged)
    assert _strip_ids(packaged) == _strip_ids(build_template())


def test_parameters_cell_declares_exactly_the_shared_names() -> None:
    import ast

    nb = nbformat.read(TEMPLATE, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    names = [t.id for node in ast.parse(cells[0].source).body for t in node.targets]
    assert names == ["data_path", "data_format", "splits_path", "output_dir", "events_path", "seed", "recipe",
                     "spec", "max_epochs", "time_budget_s"]
    classification = TEMPLATE.with_name("classification.ipynb")
    if classification.exists():
        other = [c for c in nbformat.read(classification, as_version=4).cells
                 if "parameters" in c.metadata.get("tags", [])][0]
        assert [t.id for node in ast.parse(other.source).body for t in node.targets] == names


@pytest.mark.slow
def test_template_runs_end_to_end_with_papermill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd
    import papermill

    from clinagent_lab.data.formats import load_dataset
    from clinagent_lab.data.synth.wrist import grazpedwri
    from clinagent_lab.recipe import Recipe
    from clinagent_lab.spec import MetricSpec, TaskSpec

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits it; oversubscribed threads are slower
    data = grazpedwri(tmp_path / "data", seed=2, n=24, image_size=32, box_fraction=0.5)
    table = load_dataset(data).table
    patients = sorted(table["group_id"].unique())
    which = {p: ("train", "val", "test", "train", "train")[k % 5] for k, p in enumerate(patients)}
    pd.DataFrame({"image_id": table["image_id"], "split": table["group_id"].map(which)}).to_csv(
        tmp_path / "splits.csv", index=False)
    recipe = Recipe(task_type="detection", classes=["no_fracture", "fracture"],
                    model={"architecture": "fasterrcnn_small_cnn"}, data={"image_size": 32, "batch_size": 4},
                    training={"max_epochs": 3, "accelerator": "cpu", "limit_train_batches": 2},
                    supervision={"kind": "mixed", "pseudo_label": True, "pseudo_threshold": 0.5})
    spec = TaskSpec(task_type="detection", target_classes=["fracture"],
                    primary_metric=MetricSpec(name="map50"))
    out = tmp_path / "run"
    papermill.execute_notebook(
        str(TEMPLATE), str(tmp_path / "executed.ipynb"), kernel_name="python3", cwd=str(tmp_path),
        progress_bar=False,
        parameters={"data_path": str(data), "splits_path": str(tmp_path / "splits.csv"),
                    "output_dir": str(out), "seed": 0, "recipe": recipe.model_dump(mode="json"),
                    "spec": spec.model_dump(mode="json"),
                    "max_epochs": 1})
    metrics = json.loads((out / "metrics.json").read_text())
    assert "map50" in metrics and metrics["primary"] == metrics["map50"]
    assert metrics["n_annotated"] >= 1
    val_ids = set(table["image_id"][table["group_id"].map(which) == "val"])
    predictions = json.loads((out / "val_predictions.json").read_text())
    assert {p["image_id"] for p in predictions} == val_ids
    assert (out / "model.ckpt").stat().st_size > 0 and (out / "val_boxes.png").exists()
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    epochs = [e for e in events if e["type"] == "epoch"]
    assert len(epochs) == 1 and "train_loss" in epochs[0]["metrics"]  # max_epochs=1 overrides the recipe's 3
    timing = [e for e in events if e["type"] == "log" and "timing" in e]  # where the epoch's time went
    assert len(timing) == 1 and timing[0]["timing"]["epochs"] == 1
    assert timing[0]["message"].startswith("epoch 0: ") and "validation metrics" in timing[0]["message"]
    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    assert any("pseudo labels:" in "".join(o.get("text", "") for o in c.get("outputs", []))
               for c in executed.cells if c.cell_type == "code")


if __name__ == "__main__":
    TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(build_template(), TEMPLATE)
    print(f"wrote {TEMPLATE}")
