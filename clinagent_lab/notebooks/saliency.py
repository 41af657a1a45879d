"""The iteration notebook's saliency step: Grad-CAM maps of the trained model on a stratified validation sample.

``run.show_saliency(module, datamodule)`` (the Figures cell) calls :func:`save_iteration_saliency`, which writes
``saliency.npz`` / ``saliency.json`` into the iteration folder (read back by the results cell, the report and
the benchmark) and shows the figure. Artefact masks are used where the data record them
(:mod:`clinagent_lab.data.counterfactual`). A failure here never fails the iteration: maps are an explanation,
not a result.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..data.counterfactual import mask_path, read_mask
from ..evaluation.metrics import target_class_index
from ..evaluation.saliency import Saliency, compute_saliency
from ..widgets.saliency import saliency_caption, saliency_png

__all__ = ["save_iteration_saliency", "validation_saliency"]

log = logging.getLogger(__name__)


def validation_saliency(module: Any, datamodule: Any, per_cell: int = 4) -> Saliency | None:
    """Maps of ``module`` on the validation sample of an ``ImageDataModule`` (None for other data modules)."""
    from ..data.datamodule import ImageDataModule  # torch and Lightning: only in the kernel

    if not isinstance(datamodule, ImageDataModule):
        return None
    recipe = datamodule.recipe
    ds = datamodule.dataloader_for("val").dataset
    table = datamodule.dataset.table
    column = datamodule.group_column
    k = target_class_index(list(recipe.classes), recipe.evaluation.metric_params, recipe.evaluation.positive_class)
    k = 1 if k is None and len(recipe.classes) == 2 else k
    if k is None:
        return None
    masks = None
    if column is not None:
        root, paths = datamodule.dataset.root, table["path"].to_numpy() if "path" in table else None
        if paths is not None:
            def masks(position: int) -> Any:
                return read_mask(mask_path(root, column, paths[ds.rows[position]]))
    ids = table["image_id"].astype(str).to_numpy()[ds.rows].tolist()
    return compute_saliency(module, ds, k, recipe.classes[k], masks=masks, image_ids=ids, confounder=column,
                            per_cell=per_cell, seed=recipe.seed)


def save_iteration_saliency(module: Any, datamodule: Any, output_dir: str | Path, show: bool = True
                            ) -> Saliency | None:
    """Compute, save and (in a notebook) show the maps; None (logged) when they cannot be computed."""
    try:
        maps = validation_saliency(module, datamodule)
    except Exception as exc:  # noqa: BLE001 - an explanation must not fail the iteration that trained
        log.warning("saliency maps skipped: %s", exc)
        return None
    if maps is None:
        return None
    maps.save(output_dir)
    if show:
        png = saliency_png({"this iteration": maps}, Path(output_dir) / "saliency.png")
        try:
            from IPython.display import Image, Markdown, display  # only inside a notebook
        except ImportError:
            return maps
        display(Image(data=png))
        caption = saliency_caption({"this iteration": maps})
        if caption:
            display(Markdown(caption))
    return maps
