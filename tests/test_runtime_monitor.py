"""Which validation metric picks an iteration's checkpoint: the confounder-group selection metric when a
confounder is mitigated (plain validation AUROC rewards the shortcut on confounded data), else the task's."""

from __future__ import annotations

import pytest
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from clinagent_lab.models.classifier import ImageClassifier
from clinagent_lab.notebooks.runtime import prepare_run
from clinagent_lab.tasks import get_backend
from clinagent_lab.recipe import Recipe, apply_patch


def _recipe(**changes) -> Recipe:
    base = Recipe(task_type="binary_classification", classes=["normal", "pneumothorax"])
    return apply_patch(base, {"model.architecture": "small_cnn", "model.width": 0.25, "model.in_channels": 1,
                              "data.image_size": 16, "training.early_stopping_patience": 3, **changes})


def _callbacks(recipe: Recipe, n_groups: int, tmp_path) -> tuple[str, dict[type, object]]:
    run = prepare_run(recipe=recipe.model_dump(mode="json"), spec={}, seed=0, output_dir=str(tmp_path))
    module = ImageClassifier(recipe, n_groups=n_groups)
    kwargs = run.trainer_kwargs(module)
    # by class and base class: the checkpoint is a ModelCheckpoint subclass (ties go to the lower val_loss)
    return run.monitor(module), {t: c for c in kwargs["callbacks"] for t in type(c).__mro__}


@pytest.mark.parametrize("selection", ["group_balanced_auroc", "worst_group_auroc"])
def test_mitigated_confounder_picks_the_checkpoint_on_the_group_metric(selection, tmp_path):
    recipe = _recipe(**{"evaluation.selection_metric": selection, "debias.method": "dfr",
                        "debias.column": "chest_drain"})
    monitor, callbacks = _callbacks(recipe, 2, tmp_path)
    assert monitor == f"val_{selection}"
    assert callbacks[ModelCheckpoint].monitor == monitor and callbacks[EarlyStopping].monitor == monitor
    # the engine's per-epoch curve follows the same metric
    assert get_backend(recipe.task_type).monitors(recipe)[0] == monitor


def test_without_groups_or_group_selection_the_task_metric_decides(tmp_path):
    grouped = _recipe(**{"evaluation.selection_metric": "group_balanced_auroc"})
    assert _callbacks(grouped, 0, tmp_path / "a")[0] == "val_auroc"  # no confounder groups: nothing else logged
    plain = _recipe()
    monitor, callbacks = _callbacks(plain, 2, tmp_path / "b")
    assert monitor == "val_auroc" and callbacks[ModelCheckpoint].monitor == "val_auroc"
    assert get_backend(plain.task_type).monitors(plain) == ["val_auroc"]
