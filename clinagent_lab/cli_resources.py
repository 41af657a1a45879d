"""``clinagent cache info|clear`` and ``clinagent weights list|pull``, and the hardware/weights flags of ``run``
and ``rerun`` (``--pretrained``, ``--devices``, ``--accelerator``).

Example:
    $ clinagent cache info
    $ clinagent weights list
    $ clinagent run --intent "..." --data /data/isic --pretrained resnet18.a1_in1k --accelerator gpu
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .data.cache import CACHE_ENV, cache_entries, cache_root, clear_cache
from .errors import ClinagentError
from .models.weights import cached_weights, hub_cache_dir, pretrained_overrides, pull_weights
from .notebooks.parameters import recorded_parameters
from .plan.hardware import detect_hardware
from .recipe import Recipe, apply_patch

__all__ = ["register", "add_scale_flags", "scale_overrides", "rerun_recipe_param"]


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def cmd_cache(args: argparse.Namespace) -> int:
    root = cache_root()
    if args.action == "clear":
        n, nbytes = clear_cache(root, stale_only=args.stale)
        print(f"removed {n} cache entr{'y' if n == 1 else 'ies'} ({_size(nbytes)}) from {root}")
        return 0
    entries = cache_entries(root)
    if args.json:
        print(json.dumps({"root": str(root), "entries": entries}, indent=2))
        return 0
    print(f"image cache: {root}  (set {CACHE_ENV} to move it)")
    if not entries:
        print("  (empty)")
    for e in entries:
        shape = "x".join(str(v) for v in e["shape"] or []) or "?"
        state = "stale (older version or unfinished): `clinagent cache clear --stale`" if e["stale"] else ""
        print(f"  {e['key'][:12]}  {shape:<20} {_size(e['bytes']):>10}  {e['created'] or ''}  "
              f"{Path(e['first_file'] or '').parent}  {state}")
    print(f"total: {_size(sum(e['bytes'] for e in entries))} in {len(entries)} entr"
          f"{'y' if len(entries) == 1 else 'ies'}")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    if args.action == "pull":
        if not args.name:
            raise ClinagentError("`clinagent weights pull` needs a model name", where="NAME",
                                 fix="e.g. clinagent weights pull resnet18.a1_in1k")
        path = pull_weights(args.name)
        print(f"downloaded {args.name} to {path}")
        return 0
    found = cached_weights()
    print(f"pretrained weights in {hub_cache_dir()}  (HF_HUB_CACHE / HF_HOME move it)")
    for w in found:
        print(f"  {w['name']:<40} {_size(w['bytes']):>10}  {w['path']}")
    if not found:
        print("  (none) - on a machine with a network: clinagent weights pull resnet18.a1_in1k")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``cache`` and ``weights`` subcommands."""
    cp = subparsers.add_parser("cache", help="show or delete the preprocessed image cache")
    cp.add_argument("action", choices=["info", "clear"])
    cp.add_argument("--stale", action="store_true", help="clear: only entries of older versions / unfinished")
    cp.add_argument("--json", action="store_true", help="info: print JSON")
    cp.set_defaults(func=cmd_cache)
    wp = subparsers.add_parser("weights", help="list cached pretrained weights, or download some (network)")
    wp.add_argument("action", choices=["list", "pull"])
    wp.add_argument("name", nargs="?", help="pull: a timm pretrained name, e.g. resnet18.a1_in1k")
    wp.set_defaults(func=cmd_weights)


def add_scale_flags(p: argparse.ArgumentParser) -> None:
    """``--pretrained``, ``--devices``, ``--accelerator`` for ``run`` and ``rerun``."""
    p.add_argument("--pretrained", metavar="NAME|PATH",
                   help="ImageNet weights: a timm name in the local HF/timm cache (e.g. resnet18.a1_in1k), a "
                        "local state_dict/checkpoint/safetensors file, or 'none'; never downloaded")
    p.add_argument("--devices", type=int, help="GPUs (or CPU processes) to train on, checked against the machine; "
                                               "more than one trains with DDP in forked processes (classification)")
    p.add_argument("--accelerator", choices=["auto", "cpu", "gpu"], help="where to train (default: auto)")


def scale_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Recipe fields the flags fix (checked against the machine first)."""
    out: dict[str, Any] = {}
    if getattr(args, "accelerator", None) or getattr(args, "devices", None):
        hw = detect_hardware(args.accelerator or "auto", args.devices or 1)
        out.update({"training.accelerator": hw.accelerator, "training.devices": hw.devices})
    if getattr(args, "pretrained", None):
        out.update(pretrained_overrides(args.pretrained))
    return out


def rerun_recipe_param(notebook: str | Path, changes: dict[str, Any]) -> dict[str, Any]:
    """The notebook's ``recipe`` parameter (from its run's parameters file, else its cells) with ``changes``
    applied, as a papermill parameter."""
    recipe = recorded_parameters(notebook).get("recipe")
    if not recipe:
        raise ClinagentError(f"{notebook} has no recipe parameter", where=str(notebook),
                             fix="--pretrained/--devices/--accelerator apply to iteration notebooks")
    return {"recipe": apply_patch(Recipe.model_validate(recipe), changes).model_dump(mode="json")}
