"""The names the heavy registries hold, as plain tuples, so that a Recipe is checked when it is validated
(by the CLI, the planner, an LLM proposal) without importing torch.

Each tuple sits next to its registry's name here; ``tests/test_registries.py`` asserts it equals the registry's
``names()``, so registering a name without listing it here fails the tests.

Example:
    >>> check_name("mitigation", "groupdro", MITIGATION_NAMES)
    'groupdro'
    >>> close_names("grupdro", MITIGATION_NAMES)
    ['groupdro']
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from pydantic_core import PydanticCustomError

__all__ = ["MODEL_NAMES", "DETECTOR_NAMES", "MITIGATION_NAMES", "LOSS_NAMES", "SAMPLER_NAMES", "TIMM_PREFIX",
           "close_names", "check_name", "check_architecture"]

#: ``timm:<name>`` builds any timm model by name (``clinagent_lab.models.backbones``)
TIMM_PREFIX = "timm:"

#: :data:`clinagent_lab.models.backbones.MODELS` (classification trunks)
MODEL_NAMES: tuple[str, ...] = ("convnext_atto", "efficientnet_b0", "resnet18", "resnet34", "resnet50",
                                "small_cnn", f"{TIMM_PREFIX}<name>")
#: :data:`clinagent_lab.models.detector.DETECTORS`
DETECTOR_NAMES: tuple[str, ...] = ("fasterrcnn_mobilenet", "fasterrcnn_small_cnn", "fcos_resnet18")
#: :data:`clinagent_lab.models.mitigations.MITIGATIONS`
MITIGATION_NAMES: tuple[str, ...] = ("balanced_adversarial", "balanced_dfr", "balanced_mmd", "balanced_mmd_dfr",
                                     "conditional_mmd", "counterfactual", "dfr", "gradient_reversal",
                                     "group_balanced", "groupdro", "none")
#: :data:`clinagent_lab.models.losses.LOSSES` (``LossConfig.name`` accepts these)
LOSS_NAMES: tuple[str, ...] = ("ce", "focal", "groupdro", "weighted_ce")
#: :data:`clinagent_lab.data.samplers.SAMPLER_WEIGHTS` (``DataConfig.sampler`` accepts these)
SAMPLER_NAMES: tuple[str, ...] = ("class_balanced", "group_balanced", "random")


def close_names(name: str, known: Sequence[str], n: int = 3) -> list[str]:
    """The known names closest to ``name`` (difflib), best first."""
    return difflib.get_close_matches(name, list(known), n=n, cutoff=0.5)


def _unknown(kind: str, name: str, known: Sequence[str], field: str | None, context: str) -> PydanticCustomError:
    close = close_names(name, known)
    fix = (f"did you mean {' or '.join(repr(c) for c in close)}? " if close else "") + \
        f"known {kind} names{context}: {', '.join(known)}"
    # pydantic reports it at the field's path (or ``field``); recipe.recipe_error turns it into a RecipeError
    return PydanticCustomError("unknown_name", "unknown {kind} '{name}'{context}",
                               {"kind": kind, "name": name, "context": context, "fix": fix, "field": field})


def check_name(kind: str, name: str, known: Sequence[str], *, field: str | None = None, context: str = "") -> str:
    """``name`` when it is one of ``known``; else a pydantic error naming the close ones (for validators).

    ``field``: the dotted path to report when the validator's own location is not the field (a model
    validator); ``context``: words after the name, e.g. `` for detection``."""
    if name not in known:
        raise _unknown(kind, name, known, field, context)
    return name


def check_architecture(name: str, known: Sequence[str], *, field: str = "model.architecture",
                       context: str = "") -> str:
    """A model name of ``known``, or ``timm:<name>`` when ``known`` takes timm names."""
    passthrough = f"{TIMM_PREFIX}<name>" in known
    if passthrough and name.startswith(TIMM_PREFIX) and len(name) > len(TIMM_PREFIX):
        return name
    listed = [k for k in known if k != f"{TIMM_PREFIX}<name>"] + ([f"{TIMM_PREFIX}<timm model>"] if passthrough else [])
    return check_name("model", name, listed, field=field, context=context)
