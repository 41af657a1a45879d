"""Classification backend (binary and multiclass): data module, Lightning module, predictions, evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..data.base import LoadedDataset
from ..fileio import atomic_write_text
from ..recipe import Recipe
from ..spec import TaskSpec

__all__ = ["make_datamodule", "make_module", "predict", "evaluate", "save_predictions", "load_predictions",
           "load_checkpoint",
           "confounder_columns", "class_weights"]


def confounder_columns(spec: TaskSpec, dataset: LoadedDataset | None = None) -> dict[str, str]:
    """Confounder name -> metadata column, for every confounder grounded in a column present in the data."""
    columns = set(dataset.table.columns) if dataset is not None else None
    return {c.name: c.column for c in spec.confounders
            if c.column and (columns is None or c.column in columns)}


def _group_column(recipe: Recipe, spec: TaskSpec, dataset: LoadedDataset) -> str | None:
    if recipe.debias.column:
        return recipe.debias.column
    mitigated = [c.column for c in spec.mitigated_confounders() if c.column in dataset.table.columns]
    return mitigated[0] if mitigated else None


def make_datamodule(dataset: LoadedDataset, recipe: Recipe, spec: TaskSpec, include_test: bool = False,
                    extra_transforms: Callable[[bool], list] | None = None,
                    sample_weights: Callable[..., np.ndarray] | None = None) -> Any:
    # deferred: pulls in torch, slow to import
    from ..data.datamodule import ImageDataModule

    kwargs: dict[str, Any] = {}
    if extra_transforms is not None:
        kwargs["extra_transforms"] = extra_transforms
    if sample_weights is not None:
        kwargs["sample_weights"] = sample_weights
    return ImageDataModule(dataset, recipe, modality=spec.modality, include_test=include_test,
                           group_column=_group_column(recipe, spec, dataset), **kwargs)


def class_weights(recipe: Recipe, dataset: LoadedDataset) -> list[float] | None:
    """Explicit weights from the recipe, or inverse train-class frequency for ``weighted_ce``/``focal``."""
    if recipe.loss.class_weights:
        return list(recipe.loss.class_weights)
    if recipe.loss.name not in ("weighted_ce",):
        return None
    labels = dataset.table.loc[dataset.table["split"] == "train", "label"].to_numpy()
    counts = np.bincount(labels, minlength=len(recipe.classes)).astype(float)
    counts[counts == 0] = 1.0
    weights = counts.sum() / (len(counts) * counts)
    return [round(float(w), 6) for w in weights]


def make_module(recipe: Recipe, dataset: LoadedDataset, spec: TaskSpec, datamodule: Any = None,
                custom_model: Callable[..., Any] | None = None,
                custom_loss: Callable[..., Any] | None = None) -> Any:
    # deferred: pulls in lightning, slow to import
    from ..models.classifier import ImageClassifier

    n_groups = 0
    column = _group_column(recipe, spec, dataset)
    if column is not None:
        n_groups = int(dataset.table[column].astype("string").fillna("<missing>").nunique())
    module = ImageClassifier(recipe.model_dump(mode="json"), class_weights=class_weights(recipe, dataset),
                             n_groups=n_groups)
    if custom_model is not None:
        module.set_custom_backbone(custom_model(recipe.model_dump(mode="json"), recipe.num_classes,
                                                recipe.model.in_channels))
    if custom_loss is not None:
        module.custom_loss = custom_loss
    return module


def predict(module: Any, datamodule: Any, split: str) -> pd.DataFrame:
    """Per-sample probabilities for ``split`` as a DataFrame: image_id, label, prob_<class>, group and metadata."""
    import torch  # the training stack takes seconds to import

    loader = datamodule.dataloader_for(split)
    training = datamodule.recipe.training
    gpu = training.accelerator != "cpu" and torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")  # Lightning hands the module back on the CPU after fit
    module.to(device).eval()
    indices, probs = [], []
    with torch.no_grad(), torch.autocast(device.type, enabled=gpu and "16" in training.precision,
                                         dtype=torch.bfloat16 if "bf16" in training.precision else torch.float16):
        for batch in loader:
            if gpu:
                batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            if hasattr(module, "on_after_batch_transfer"):  # as in training: e.g. channels_last images
                batch = module.on_after_batch_transfer(batch, 0)
            out = module.predict_step(batch, 0)
            indices.append(out["index"].cpu().numpy())
            probs.append(out["probs"].float().cpu().numpy())
    index = np.concatenate(indices) if indices else np.zeros(0, dtype=int)
    # float64: written to CSV, each value reads back exactly, so a threshold chosen here splits the reloaded
    # scores the same way (a float32 score's short repr reads back a hair above or below it)
    prob = np.concatenate(probs).astype(np.float64) if probs else np.zeros((0, len(datamodule.recipe.classes)))
    table = datamodule.dataset.table.iloc[index]
    frame = pd.DataFrame({"image_id": table["image_id"].astype(str).to_numpy(),
                          "label": table["label"].to_numpy().astype(int),
                          "group_id": table["group_id"].astype(str).to_numpy()})
    for k, name in enumerate(datamodule.recipe.classes):
        frame[f"prob_{name}"] = prob[:, k]
    for column in datamodule.dataset.metadata_columns:
        frame[column] = table[column].to_numpy()
    return frame


def evaluate(predictions: pd.DataFrame, recipe: Recipe, spec: TaskSpec, dataset: LoadedDataset | None = None,
             threshold: float | None = None) -> dict[str, Any]:
    # deferred: pulls in scipy, slow to import
    from ..evaluation.evaluate import evaluate_predictions

    confounders = {n: c for n, c in confounder_columns(spec).items() if c in predictions.columns}
    return evaluate_predictions(predictions, recipe.classes, recipe.evaluation, confounders=confounders,
                                threshold=threshold, seed=recipe.seed, patient_column="group_id")


def save_predictions(predictions: pd.DataFrame, path: str | Path) -> Path:
    """Write the predictions as CSV, probabilities as float64 (they read back exactly; see :func:`predict`)."""
    probs = {c: np.float64 for c in predictions.columns if str(c).startswith("prob_")}
    atomic_write_text(Path(path), predictions.astype(probs).to_csv(index=False))
    return Path(path)


def load_predictions(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"image_id": str, "group_id": str})


def load_checkpoint(path: str | Path, recipe: Recipe, model_hooks: dict[str, Any] | None = None) -> Any:
    """The classifier saved at ``path``, rebuilt from ``recipe`` (with the custom model hook, if any)."""
    import torch  # the training stack takes seconds to import

    # deferred: pulls in torch, slow to import
    from ..models.checkpoints import load_weights

    # deferred: pulls in lightning, slow to import
    from ..models.classifier import ImageClassifier

    hparams = torch.load(str(path), map_location="cpu", weights_only=False).get("hyper_parameters", {})
    module = ImageClassifier(recipe.model_dump(mode="json"), class_weights=hparams.get("class_weights"),
                             n_groups=int(hparams.get("n_groups", 0)))
    if model_hooks and "custom_model" in model_hooks:
        module.set_custom_backbone(model_hooks["custom_model"](recipe.model_dump(mode="json"), recipe.num_classes,
                                                               recipe.model.in_channels))
    load_weights(module, path)
    return module
