"""The "Where the model looks" section: Grad-CAM maps of the baseline beside the kept model, on the same
stratified validation images (drain-bearing negatives first), with the share of attribution inside the
artefact where its location is known. The maps are those each iteration's notebook saved
(:mod:`clinagent_lab.notebooks.saliency`); the PNG is embedded so the report stays one file
(``templates/sections/saliency.html.j2``).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from ..evaluation.saliency import load_saliency
from ..widgets.saliency import saliency_caption, saliency_png
from .context import ReportContext

__all__ = ["saliency_section"]


def _folder(ctx: ReportContext, output_dir: str | None) -> Path | None:
    return None if not output_dir else ctx.inputs.session_dir / output_dir  # absolute paths stay as they are


def saliency_section(ctx: ReportContext) -> dict[str, Any] | None:
    """None when no iteration saved maps (detection, or sessions from before the maps existed)."""
    session = ctx.session
    best = session.best()
    base = next((it for it in session.iterations if it.decision == "baseline"), None)
    models, names = {}, []
    for it, name in ((base, "baseline"), (best, "kept")):
        if it is None or (name == "kept" and base is not None and it.index == base.index):
            continue
        folder = _folder(ctx, it.output_dir)
        maps = load_saliency(folder) if folder is not None else None
        if maps is not None:
            label = f"{name} (iteration {it.index})"
            models[label] = maps
            names.append((label, it, maps))
    if not models:
        return None
    png = base64.b64encode(saliency_png(models)).decode("ascii")
    rows = []
    for label, it, maps in names:
        s = maps.summary()
        share = s.get("share_inside_artefact")
        neg = s.get("share_inside_artefact_negatives")
        rows.append([label, it.recipe.debias.method, s["n"], s.get("n_with_artefact", "—"),
                     f"{share:.1%}" if share is not None else "—", f"{neg:.1%}" if neg is not None else "—"])
    conf = next(iter(models.values())).confounder or "artefact"
    return {"confounder": conf, "png": png, "caption": saliency_caption(models), "rows": rows}
