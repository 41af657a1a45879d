"""``clinagent export SESSION --format onnx|torchscript``: the kept model, ready to deploy, with what it needs.

Written to ``<session>/export/`` (or ``--out``):

- ``model.onnx`` or ``model.pt`` (TorchScript): input ``image``, float32 ``(N, C, S, S)`` pixel values 0–255 of
  images already resized to ``S`` (see ``preprocessing.json``); output ``probabilities`` ``(N, classes)``. The
  pixel scaling and normalisation the notebooks used, the Deep Feature Reweighting head (when refitted) and the
  softmax are inside the graph.
- ``preprocessing.json``: image size, channels, resize rule, normalisation, class names (output order),
  target class and the decision threshold chosen on validation.
- ``model_card.json`` and ``model_card.md``: what the model is for, how it was chosen, its validation and
  (when read) test numbers, its confounders and mitigation, and its limits.

:func:`preprocess` turns a uint8 ``HxWxC`` image into the model's input with the notebooks' own resize step.

Example:
    >>> from pathlib import Path
    >>> try:
    ...     export_model(Path("/nonexistent-session"), "onnx")
    ... except Exception as exc:
    ...     print(type(exc).__name__)
    SessionError
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import to_channels
from ..data.transforms import NORMALISATION, _policy, resize_transforms
from ..errors import ClinagentError, RecipeError, SessionError
from ..fileio import atomic_write_text
from ..records import Iteration, Session
from ..tasks import get_backend

__all__ = ["FORMATS", "export_model", "preprocess", "preprocessing_info", "model_card", "register"]

#: export formats and the file each writes
FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}
#: the training normalisation, ``(x / 255 - 0.5) / 0.5`` per channel, inside the exported graph: training applies
#: it to each batch on the device (``data.transforms.normalise_images``), the exported model to its float input
NORMALISE = NORMALISATION


def _best(session: Session, session_dir: Path) -> Iteration:
    best = session.best()
    if best is None:
        raise SessionError("the session has no kept iteration to export", where=str(session_dir / "session.json"),
                           fix="run at least one iteration that finishes (clinagent run)")
    if get_backend(best.recipe.task_type).has_boxes:
        raise RecipeError(f"export supports image-level classifiers; iteration {best.index} is a "
                          f"{best.recipe.task_type} model", where="session best iteration", fix="export a classifier")
    if best.recipe.custom_code:
        raise RecipeError(f"iteration {best.index} runs custom code ({', '.join(best.recipe.custom_code)}) that "
                          "a standalone model cannot carry", where="recipe.custom_code",
                          fix="export an iteration without custom hooks")
    if not best.checkpoint or not (session_dir / best.checkpoint).exists():
        raise SessionError(f"iteration {best.index} has no checkpoint", where=str(best.checkpoint),
                           fix="rerun the iteration (clinagent rerun) to write model.ckpt")
    return best


def preprocessing_info(session: Session, it: Iteration) -> dict[str, Any]:
    """What a caller must do to an image before the exported model sees it, and how to read its output."""
    r = it.recipe
    keep_aspect = _policy(session.spec.modality).keep_aspect
    k = r.evaluation.positive_class if r.evaluation.positive_class is not None else (1 if r.num_classes == 2
                                                                                       else None)
    return {
        "input": {"name": "image", "dtype": "float32", "layout": "NCHW", "pixel_range": [0, 255],
                  "image_size": int(r.data.image_size), "channels": int(r.model.in_channels)},
        "resize": ("longest side to image_size (area), then zero padding to a square" if keep_aspect
                   else "to image_size x image_size (area interpolation)"),
        "keep_aspect": keep_aspect, "modality": session.spec.modality,
        "normalisation_in_graph": NORMALISE,
        "output": {"name": "probabilities", "classes": list(r.classes)},
        "class_names": list(r.classes),
        "target_class": r.classes[k] if k is not None else None,
        "threshold": it.val_metrics.get("threshold"),
        "threshold_rule": r.evaluation.operating_point,
    }


def preprocess(image: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """A uint8 ``HxW[xC]`` image as the model's float32 ``(C, S, S)`` input (the notebooks' resize step)."""
    import albumentations as A  # only when preprocessing

    channels, size = info["input"]["channels"], info["input"]["image_size"]
    arr = to_channels(np.asarray(image), channels)
    out = A.Compose(resize_transforms(size, info.get("modality", "other")))(image=arr)["image"]
    return np.ascontiguousarray(out.reshape(size, size, channels).transpose(2, 0, 1), dtype=np.float32)


def model_card(session: Session, it: Iteration, info: dict[str, Any], fmt: str) -> dict[str, Any]:
    spec, r = session.spec, it.recipe
    test = session.final_test
    keep = ("auroc", "sensitivity", "specificity", "threshold", "selection_metric", "selection_value")
    return {
        "model": f"iteration {it.index} of session {session.id}", "format": fmt,
        "intended_use": spec.objective or session.request, "request": session.request,
        "task": spec.task_type, "modality": spec.modality, "classes": list(r.classes),
        "target_class": info["target_class"], "threshold": info["threshold"],
        "architecture": r.model.architecture, "mitigation": r.debias.method,
        "confounders": [{"name": c.name, "column": c.column, "action": c.action} for c in spec.confounders],
        "selection": it.decision_reason,
        "validation": {k: it.val_metrics.get(k) for k in keep},
        "test": ({k: test.metrics.get(k) for k in keep} | {"n": test.n_samples, "iteration": test.iteration}
                 if test is not None else None),
        "limits": ["trained and validated on the session's data only; validate locally before clinical use",
                   "the threshold was chosen on validation; recalibrate it for a new population",
                   "input images must be preprocessed as preprocessing.json describes"],
    }


def _card_markdown(card: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = [f"# Model card: {card['model']}", "", f"**Intended use:** {card['intended_use']}", "",
             f"- task: {card['task']} ({card['modality']}); classes: {', '.join(card['classes'])}; target class: "
             f"{card['target_class']}", f"- decision threshold (chosen on validation): {fmt(card['threshold'])}; "
             f"format: {card['format']}", f"- architecture: {card['architecture']}; mitigation: {card['mitigation']}",
             f"- why this model: {card['selection']}", "", "| split | " + " | ".join(card["validation"]) + " |",
             "| --- |" + " --- |" * len(card["validation"]),
             "| validation | " + " | ".join(fmt(v) for v in card["validation"].values()) + " |"]
    if card["test"]:
        lines.append("| test (read once) | " + " | ".join(fmt(card["test"].get(k)) for k in card["validation"]) + " |")
    lines += ["", "Confounders: " + ("; ".join(f"{c['name']} ({c['action']})" for c in card["confounders"]) or "none"),
              "", "Limits:", *[f"- {x}" for x in card["limits"]], ""]
    return "\n".join(lines)


def _wrapped(it: Iteration, checkpoint: Path) -> Any:
    import torch  # heavy: only when exporting
    from torch import nn  # heavy: only when exporting

    from ..models.classifier import ImageClassifier  # torch and Lightning: only when exporting

    module = ImageClassifier.load_from_checkpoint(str(checkpoint), map_location="cpu", weights_only=False).eval()

    refit = module.dfr_head is not None and module.dfr_head.is_fitted  # the refitted head replaces the trained one

    class Deployed(nn.Module):
        """Pixels 0-255 in, class probabilities out (``ImageClassifier.forward`` without the Lightning shell,
        which tracing cannot walk)."""

        def __init__(self) -> None:
            super().__init__()
            self.backbone = module.backbone
            self.head = module.dfr_head.linear if refit else None

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            x = (image / NORMALISE["max_pixel_value"] - NORMALISE["mean"]) / NORMALISE["std"]
            logits = self.head(self.backbone.forward_features(x)) if self.head is not None else self.backbone(x)
            return logits.softmax(dim=1)

    return Deployed().eval()


def export_model(session_dir: str | Path, fmt: str = "onnx", out: str | Path | None = None) -> Path:
    """Write the kept model in ``fmt`` with ``preprocessing.json`` and the model card; returns the model file."""
    import torch  # heavy: only when exporting

    if fmt not in FORMATS:
        raise ClinagentError(f"unknown export format '{fmt}'", where="--format", fix=f"use one of: {', '.join(FORMATS)}")
    session_dir = Path(session_dir)
    session = Session.load(session_dir)
    it = _best(session, session_dir)
    info = preprocessing_info(session, it)
    folder = Path(out) if out else session_dir / "export"
    folder.mkdir(parents=True, exist_ok=True)
    model = _wrapped(it, session_dir / it.checkpoint)
    size, channels = info["input"]["image_size"], info["input"]["channels"]
    example = torch.rand(2, channels, size, size) * 255
    path = folder / FORMATS[fmt]
    with torch.no_grad():
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(model, example), str(path))
        else:
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(model, (example,), str(path), input_names=["image"], output_names=["probabilities"],
                              dynamic_shapes={"image": {0: batch}}, dynamo=True, external_data=False,
                              verbose=False)
    card = model_card(session, it, info, fmt)
    atomic_write_text(folder / "preprocessing.json", json.dumps(info, indent=2))
    atomic_write_text(folder / "model_card.json", json.dumps(card, indent=2))
    atomic_write_text(folder / "model_card.md", _card_markdown(card))
    return path


def cmd_export(args: argparse.Namespace) -> int:
    print(export_model(args.session, args.format, args.out))
    return 0


def register(subparsers: Any) -> None:
    """Add ``export`` to the CLI's subcommands."""
    ep = subparsers.add_parser("export", help="write the kept model (ONNX or TorchScript) with its "
                               "preprocessing, class names, threshold and model card")
    ep.add_argument("session", help="session folder (holds session.json)")
    ep.add_argument("--format", choices=sorted(FORMATS), default="onnx")
    ep.add_argument("--out", help="output folder (default: <session>/export)")
    ep.set_defaults(func=cmd_export)
