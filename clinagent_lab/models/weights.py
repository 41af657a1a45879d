"""Pretrained backbone weights, offline first: a timm name found in the local cache, or a local file.

``Recipe.model.pretrained`` holds either

- a timm pretrained name (``resnet18.a1_in1k``, ``timm:efficientnet_b0.ra_in1k``, or a bare architecture name
  for its default tag), resolved in the local Hugging Face hub cache (``$HF_HUB_CACHE``, else
  ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``) or timm's older ``torch.hub`` checkpoint folder, with
  the hub in offline mode: nothing is ever downloaded during a run (``clinagent weights pull NAME`` downloads
  on a machine with a network); or
- a local file: a bare state_dict, a timm or Lightning checkpoint (``state_dict`` / ``model`` /
  ``state_dict_ema`` inside), or ``.safetensors``.

The file's sha256 is recorded (``model.pretrained_sha256``) when the recipe is made, and checked whenever the
weights are loaded again. Loading adapts the first convolution to the input channels (timm's
``adapt_input_conv``), leaves the classifier head to the task, and stops at the first tensor whose shape does
not fit, naming it.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RecipeError

__all__ = ["ResolvedWeights", "resolve_weights", "pretrained_overrides", "load_weights", "read_state_dict",
           "cached_weights", "hub_cache_dir", "pull_weights", "timm_name", "FILE_SUFFIXES"]

_HUB_FILES = ("model.safetensors", "pytorch_model.bin")
FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".tar")
_CLASSIFIER_KEYS = ("fc.", "head.fc.", "classifier.", "head.", "last_linear.")


@dataclass(frozen=True)
class ResolvedWeights:
    """Where the weights of ``Recipe.model.pretrained`` are: ``kind`` is ``"hub"`` (the local HF/timm cache)
    or ``"file"``; ``architecture`` is the timm architecture for hub weights (None for files)."""

    name: str
    kind: str
    path: Path
    sha256: str
    architecture: str | None = None
    input_size: int | None = None


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def timm_name(name: str) -> str:
    """``timm:resnet18.a1_in1k`` -> ``resnet18.a1_in1k``; a bare architecture gets its default pretrained tag.

    Raises:
        RecipeError: timm knows no such model; the message lists close names.
    """
    import timm  # deferred: heavy (torch)

    bare = name[len("timm:"):] if name.startswith("timm:") else name
    arch = bare.split(".", 1)[0]
    if timm.is_model(arch):
        tags = timm.list_pretrained(f"{arch}.*")
        if "." not in bare and tags:
            return tags[0]
        if bare in tags:
            return bare
    known = timm.list_pretrained()
    close = difflib.get_close_matches(bare, known, n=5, cutoff=0.6) or \
        difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
    raise RecipeError(f"unknown pretrained model '{name}'", where="field 'model.pretrained'",
                      fix=(f"did you mean: {', '.join(close)}? " if close else "")
                      + "use a name from timm.list_pretrained() or the path of a local weights file")


def _hub_file(name: str) -> Path | None:
    import timm  # deferred: heavy (torch)
    from huggingface_hub import try_to_load_from_cache  # deferred: optional, slow to import

    cfg = timm.models.get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if repo:
        repo = repo.split("@", 1)[0]
        for filename in _HUB_FILES:
            found = try_to_load_from_cache(repo, filename, cache_dir=str(hub_cache_dir()))
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    url = getattr(cfg, "url", None) if cfg is not None else None
    if url:
        import torch.hub  # deferred: heavy

        legacy = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if legacy.is_file():
            return legacy
    return None


def resolve_weights(spec: str, expected_sha256: str | None = None) -> ResolvedWeights:
    """Find the weights ``spec`` names, without any network access.

    Raises:
        RecipeError: an unknown timm name (close names listed), weights not in the local cache (the fix names
            ``clinagent weights pull``), a missing file, or a file whose sha256 is not the one recorded.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    candidate = Path(spec).expanduser()
    if candidate.suffix in FILE_SUFFIXES or os.sep in spec or candidate.exists():
        if not candidate.is_file():
            raise RecipeError(f"pretrained weights file not found: {candidate}", where="field 'model.pretrained'",
                              fix="give the path of a local .pt/.pth/.safetensors file, or a timm model name")
        found = ResolvedWeights(name=str(candidate.resolve()), kind="file", path=candidate.resolve(),
                                sha256=_sha256(candidate))
    else:
        import timm  # deferred: heavy (torch)

        name = timm_name(spec)
        path = _hub_file(name)
        if path is None:
            raise RecipeError(f"pretrained weights '{name}' are not in the local cache ({hub_cache_dir()})",
                              where="field 'model.pretrained'",
                              fix=f"run `clinagent weights pull {name}` on a machine with a network (or copy its "
                                  f"Hugging Face cache folder here), or train without pretrained weights")
        cfg = timm.models.get_pretrained_cfg(name)
        size = (getattr(cfg, "input_size", None) or (3, 224, 224))[-1]
        found = ResolvedWeights(name=name, kind="hub", path=path, sha256=_sha256(path),
                                architecture=name.split(".", 1)[0], input_size=int(size))
    if expected_sha256 and expected_sha256 != found.sha256:
        raise RecipeError(f"pretrained weights {found.path} changed: sha256 {found.sha256[:12]}..., recorded "
                          f"{expected_sha256[:12]}...", where="field 'model.pretrained_sha256'",
                          fix="restore the original weights file, or start a new session with the new one")
    return found


def pretrained_overrides(spec: str) -> dict[str, Any]:
    """The recipe fields (dotted) that ``--pretrained spec`` fixes: the weights found (name or resolved path),
    their sha256 and, for hub weights, the timm architecture; ``"none"`` trains from scratch.

    Raises:
        RecipeError: see :func:`resolve_weights`.
    """
    if spec.strip().lower() == "none":
        return {"model.pretrained": None}
    found = resolve_weights(spec)
    out: dict[str, Any] = {"model.pretrained": found.name, "model.pretrained_sha256": found.sha256}
    if found.architecture:
        out["model.architecture"] = f"timm:{found.architecture}"
    return out


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """Tensors of a state_dict, timm/Lightning checkpoint or ``.safetensors`` file (no pickled code runs)."""
    import torch  # deferred: heavy

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file  # deferred: imports torch

            return dict(load_file(str(path), device="cpu"))
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, safetensors and truncation errors alike
        raise RecipeError(f"cannot read pretrained weights: {exc}", where=str(path),
                          fix="save weights with torch.save(model.state_dict(), path) or safetensors") from exc
    for key in ("state_dict_ema", "state_dict", "model", "model_state_dict"):
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            raw = raw[key]
            break
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise RecipeError("pretrained weights file does not hold a state_dict", where=str(path),
                          fix="save weights with torch.save(model.state_dict(), path) or safetensors")
    return {k[7:] if k.startswith("module.") else k: v for k, v in raw.items()}


def load_weights(trunk: Any, weights: ResolvedWeights) -> list[str]:
    """Load ``weights`` into ``trunk`` (a feature extractor without classifier); returns the keys left at their
    initial values. A classifier in the file is dropped; a first convolution with other input channels is
    adapted; any other shape mismatch raises, naming the first tensor.

    Raises:
        RecipeError: a tensor's shape does not fit, or no tensor of the file matches the model.
    """
    from timm.models import adapt_input_conv  # deferred: heavy (torch)

    state = read_state_dict(weights.path)
    own = trunk.state_dict()
    for prefix in ("trunk.", "model.", "backbone."):  # wrappers (a clinagent Backbone, Lightning modules)
        if not any(k in own for k in state) and any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    state = {k: v for k, v in state.items() if k in own or not k.startswith(_CLASSIFIER_KEYS)}
    first_conv = next((k for k, v in own.items() if v.ndim == 4), None)
    if first_conv in state and state[first_conv].shape[1] != own[first_conv].shape[1]:
        state[first_conv] = adapt_input_conv(int(own[first_conv].shape[1]), state[first_conv])
    matched = [k for k in state if k in own]
    if not matched:
        raise RecipeError(f"no tensor of {weights.path} matches the model's parameters",
                          where="field 'model.pretrained'",
                          fix="use weights of the same architecture as model.architecture")
    for key in matched:
        if tuple(state[key].shape) != tuple(own[key].shape):
            raise RecipeError(f"pretrained tensor '{key}' has shape {tuple(state[key].shape)}, the model's has "
                              f"{tuple(own[key].shape)}", where=str(weights.path),
                              fix="use weights of the same architecture (and width) as model.architecture")
    result = trunk.load_state_dict({k: state[k] for k in matched}, strict=False)
    return list(result.missing_keys)


def cached_weights() -> list[dict[str, Any]]:
    """timm weights present in the local hub cache: ``{"name", "source", "path", "bytes"}`` per file."""
    out = []
    root = hub_cache_dir()
    for repo in sorted(root.glob("models--timm--*")) if root.is_dir() else []:
        name = repo.name[len("models--timm--"):]
        for snapshot in sorted((repo / "snapshots").glob("*")):
            for filename in _HUB_FILES:
                path = snapshot / filename
                if path.is_file():
                    out.append({"name": name, "source": f"timm/{name} (Hugging Face hub cache)",
                                "path": str(path), "bytes": path.stat().st_size})
    return out


def pull_weights(name: str) -> Path:  # pragma: no cover - needs a network
    """Download ``name``'s weights into the local hub cache (the one command that uses the network)."""
    import timm  # deferred: heavy (torch)
    from huggingface_hub import hf_hub_download  # deferred: optional, slow to import

    full = timm_name(name)
    cfg = timm.models.get_pretrained_cfg(full)
    repo = getattr(cfg, "hf_hub_id", None)
    if not repo:
        raise RecipeError(f"'{full}' has no Hugging Face hub copy", where=name,
                          fix="download its file yourself and pass the path to --pretrained")
    os.environ.pop("HF_HUB_OFFLINE", None)
    return Path(hf_hub_download(repo.split("@", 1)[0], _HUB_FILES[0], cache_dir=str(hub_cache_dir())))
