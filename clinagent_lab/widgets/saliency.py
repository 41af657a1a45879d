"""The saliency figure: where the baseline and a later model look on the same validation images.

:func:`saliency_png` draws, for up to ``max_images`` images of the stratified sample (confounder-positive
negatives first), the image with the artefact's outline where it is known, then each model's Grad-CAM map
over it, titled with the model's probability and the share of the map inside the artefact.
:func:`saliency_pngs` is the results cell's hook: the figure of an iteration next to its session's baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.saliency import Saliency, load_saliency
from ..records import SESSION_FILE, Session

__all__ = ["saliency_png", "saliency_pngs", "saliency_caption", "baseline_folder"]


def _order(s: Saliency, max_images: int) -> np.ndarray:
    """Confounder-positive negatives first, then the other cells in turn."""
    has = s.masks.reshape(len(s.masks), -1).any(1) if s.masks is not None else s.groups > 0
    first = np.flatnonzero((s.labels == 0) & has)
    rest = [np.flatnonzero(~((s.labels == 0) & has) & (s.labels == y) & (s.groups == g))
            for y in np.unique(s.labels) for g in np.unique(s.groups)]
    picked = list(first[: max(1, max_images // 2)])
    for k in range(len(s.labels)):
        for cell in rest:
            if k < len(cell) and len(picked) < max_images:
                picked.append(cell[k])
    return np.asarray(picked[:max_images], dtype=np.int64)


def _title(name: str, s: Saliency, k: int) -> str:
    shares = s.shares
    inside = "" if shares is None or not s.masks[k].any() else f", {shares[k]:.0%} in {s.confounder or 'artefact'}"
    return f"{name}: p={s.probs[k]:.2f}{inside}"


def saliency_png(models: dict[str, Saliency], path: str | Path | None = None, max_images: int = 6) -> bytes:
    """PNG bytes (also written to ``path``): one row per image, one column per model after the image itself.

    Models are matched on ``image_ids``; the first model's sample decides the rows.
    """
    from .static import figure_png, new_figure  # heavy (matplotlib): only when a figure is drawn

    names = list(models)
    first = models[names[0]]
    rows = _order(first, max_images)
    fig = new_figure(2.3 * (len(names) + 1), 2.3 * len(rows))
    axes = fig.subplots(len(rows), len(names) + 1, squeeze=False)
    for r, k in enumerate(rows):
        image_id = first.image_ids[k]
        ax = axes[r, 0]
        ax.imshow(first.images[k], cmap="gray", vmin=0, vmax=1)
        if first.masks is not None and first.masks[k].any():
            ax.contour(first.masks[k], levels=[0.5], colors="cyan", linewidths=0.8)
        label = "positive" if first.labels[k] else "negative"
        ax.set_title(f"{label}, {first.confounder or 'group'}={int(first.groups[k])}", fontsize=7)
        for c, name in enumerate(names, start=1):
            s = models[name]
            ax = axes[r, c]
            j = s.image_ids.index(image_id) if image_id in s.image_ids else None
            ax.imshow(first.images[k], cmap="gray", vmin=0, vmax=1)
            if j is not None:
                m = s.maps[j] / max(float(s.maps[j].max()), 1e-12)
                ax.imshow(m, cmap="jet", alpha=0.45, vmin=0, vmax=1)
                ax.set_title(_title(name, s, j), fontsize=7)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    data = figure_png(fig)
    if path is not None:
        Path(path).write_bytes(data)
    return data


def saliency_caption(models: dict[str, Saliency]) -> str:
    """One sentence per model: mean share of the map inside the artefact (where locations are known)."""
    parts = []
    for name, s in models.items():
        summary = s.summary()
        if summary.get("share_inside_artefact") is not None:
            neg = summary.get("share_inside_artefact_negatives")
            parts.append(f"{name}: {summary['share_inside_artefact']:.1%} of the Grad-CAM attribution inside the "
                         f"{s.confounder or 'artefact'} on the {summary['n_with_artefact']} sampled images that "
                         f"have one" + (f" ({neg:.1%} on the negatives among them)" if neg is not None else ""))
    return "; ".join(parts) + ("." if parts else "")


def baseline_folder(session_dir: str | Path | None, iteration: int | None) -> Path | None:
    """The output folder of the session's baseline iteration, when it is not ``iteration`` itself."""
    if session_dir is None:
        return None
    session_dir = Path(session_dir)
    if not (session_dir / SESSION_FILE).is_file():
        return None
    session = Session.load(session_dir)
    base = next((it for it in session.iterations if it.decision == "baseline"), None)
    if base is None or base.index == iteration or not base.output_dir:
        return None
    return session_dir / base.output_dir  # an absolute output_dir stays as it is


def saliency_pngs(results: Any) -> list[Path]:
    """Hook for the results cell (``IterationResults``): ``saliency.png`` of the iteration, next to its
    session's baseline when there is one; empty when the iteration saved no maps."""
    current = load_saliency(results.folder)
    if current is None:
        return []
    models: dict[str, Saliency] = {}
    base_dir = baseline_folder(getattr(results, "session_dir", None), getattr(results, "iteration", None))
    base = load_saliency(base_dir) if base_dir is not None else None
    if base is not None:
        models["baseline"] = base
    models[f"iteration {results.iteration}" if results.iteration is not None else "this model"] = current
    path = results.folder / "saliency.png"
    saliency_png(models, path)
    return [path]
