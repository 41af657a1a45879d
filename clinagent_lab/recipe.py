"""Recipe: everything one iteration needs, as data.

The task initializer writes the first one from a TaskSpec and a DatasetFingerprint; the refiner (rules or an
LLM) proposes the next one as a :class:`RecipePatch`. Each choice carries a one-line reason in ``reasons``
(keyed by dotted field path, e.g. ``"optim.lr"``). The template notebooks receive it as papermill parameters.

Registry names (``model.architecture``, ``debias.method``) are checked against the light name lists of
:mod:`clinagent_lab.names` when a Recipe is validated, so a misspelt name is refused with the close ones named
before anything runs, not inside the kernel.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import RecipeError
from .names import MITIGATION_NAMES, check_architecture, check_name
from .tasks import TASKS, get_backend

__all__ = [
    "ModelConfig",
    "DataConfig",
    "AugmentConfig",
    "OptimConfig",
    "LossConfig",
    "TrainingConfig",
    "DebiasConfig",
    "EvalConfig",
    "SupervisionConfig",
    "Recipe",
    "RecipePatch",
    "apply_patch",
    "recipe_diff",
    "recipe_error",
    "check_overrides",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Model):
    architecture: str = Field(default="resnet18", description="name in clinagent_lab.models registry")
    pretrained_path: str | None = Field(default=None, description="local weights file; never downloaded")
    pretrained: str | None = Field(default=None, description="timm pretrained name found in the local HF/timm "
                                   "cache (e.g. 'resnet18.a1_in1k'), or a local state_dict/checkpoint/"
                                   "safetensors file; never downloaded (see clinagent_lab.models.weights)")
    pretrained_sha256: str | None = Field(default=None, description="sha256 of the pretrained file, recorded "
                                          "when the recipe is made and checked at every load")
    in_channels: int = Field(default=3, ge=1, le=4)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    width: float = Field(default=1.0, gt=0.0, le=4.0, description="channel multiplier for built-in nets")


class DataConfig(_Model):
    image_size: int = Field(default=64, ge=8, le=2048)
    batch_size: int = Field(default=64, ge=1, le=4096)
    num_workers: int = Field(default=0, ge=0, le=64)
    pin_memory: bool = Field(default=False, description="page-locked batches for fast host-to-GPU copies")
    sampler: Literal["random", "class_balanced", "group_balanced"] = "random"
    cache_images: bool = True
    max_train_samples: int | None = Field(default=None, ge=1, description="subsample train (quick runs)")
    format_options: dict[str, Any] = Field(default_factory=dict, description="passed to the format adapter, "
                                           "e.g. {'subtask': 'melanoma_vs_nevus'}")


class AugmentConfig(_Model):
    preset: Literal["none", "light", "medium", "strong"] = "light"
    horizontal_flip: bool = True
    vertical_flip: bool = False
    rotate_degrees: float = Field(default=10.0, ge=0.0, le=180.0)
    scale: float = Field(default=0.1, ge=0.0, le=0.5)
    brightness_contrast: float = Field(default=0.1, ge=0.0, le=0.5)
    color_jitter: float = Field(default=0.0, ge=0.0, le=0.5)


class OptimConfig(_Model):
    name: Literal["adamw", "sgd", "adam"] = "adamw"
    lr: float = Field(default=1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(default=1e-4, ge=0.0, le=1.0)
    schedule: Literal["none", "cosine", "onecycle"] = "onecycle"
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)


class LossConfig(_Model):
    name: Literal["ce", "weighted_ce", "focal", "groupdro"] = "ce"
    class_weights: list[float] | None = None
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=0.5)
    focal_gamma: float = Field(default=2.0, ge=0.0, le=10.0)


class TrainingConfig(_Model):
    max_epochs: int = Field(default=10, ge=1, le=1000)
    max_time_s: float | None = Field(default=None, gt=0, description="Lightning max_time; budget guard")
    early_stopping_patience: int | None = Field(default=None, ge=1)
    precision: Literal["32-true", "16-mixed", "bf16-mixed"] = "32-true"
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    devices: int = Field(default=1, ge=1, le=64, description="processes (GPUs, or CPU processes over gloo); "
                         "more than one trains with DDP")
    channels_last: bool = Field(default=False, description="NHWC memory format (faster convolutions on "
                                "tensor-core GPUs)")
    deterministic: bool = Field(default=True, description="deterministic algorithms (on a GPU where PyTorch has "
                                "them: see lightning_deterministic)")
    limit_train_batches: float | int | None = None
    limit_val_batches: float | int | None = None
    val_check_interval: float | None = None

    def lightning_deterministic(self) -> bool | str:
        """Lightning's ``Trainer(deterministic=...)`` for this config.

        On a GPU ``"warn"``: deterministic kernels wherever PyTorch has one, and a warning naming each op that has
        none (torchvision's RoIAlign backward in the detectors, bilinear upsampling in a custom model), where
        ``True`` would stop training at that op's first backward. On the CPU every op is deterministic: ``True``.

        Example:
            >>> TrainingConfig(accelerator="gpu").lightning_deterministic()
            'warn'
            >>> TrainingConfig(accelerator="cpu").lightning_deterministic()
            True
        """
        if not self.deterministic or self.accelerator == "cpu":
            return self.deterministic
        if self.accelerator == "auto":
            import torch  # deferred: heavy; "auto" trains on the GPU when there is one

            if not torch.cuda.is_available():
                return True
        return "warn"


class DebiasConfig(_Model):
    method: str = Field(default="none", description="name in the mitigation registry: none, group_balanced, "
                        "groupdro, gradient_reversal, balanced_adversarial, conditional_mmd, balanced_mmd, dfr, "
                        "balanced_dfr")
    confounder: str | None = Field(default=None, description="confounder name from the TaskSpec")
    column: str | None = Field(default=None, description="metadata column holding the confounder")
    adversary_weight: float = Field(default=1.0, ge=0.0, le=100.0)
    mmd_weight: float = Field(default=1.0, ge=0.0, le=100.0, description="weight of the label-conditional "
                              "MMD invariance penalty (conditional_mmd, balanced_mmd)")
    groupdro_eta: float = Field(default=0.01, gt=0.0, le=10.0)
    refit_last_layer: bool = Field(default=False, description="refit the last layer on label x confounder "
                                   "balanced subsets before each validation (Deep Feature Reweighting)")
    refit_holdout: float = Field(default=0.5, ge=0.0, lt=1.0, description="share of the smallest label x "
                                 "confounder cell (up to 4x that from larger cells) kept out of training "
                                 "for the refit; 0 refits on training images")
    counterfactual: float = Field(default=0.0, ge=0.0, le=1.0, description="probability of showing a training "
                                  "image with its artefact removed or added where the data record its "
                                  "location (masks/<column>/); 0.5 makes it independent of the label")

    @field_validator("method")
    @classmethod
    def _registered(cls, value: str) -> str:
        return check_name("mitigation", value, MITIGATION_NAMES)


class EvalConfig(_Model):
    primary_metric: str = "auroc"
    metric_params: dict[str, Any] = Field(default_factory=dict)
    positive_class: int | None = Field(default=None, description="index of the target class (binary/triage)")
    operating_point: Literal["youden", "at_specificity", "at_sensitivity", "fixed"] = "youden"
    operating_value: float | None = None
    bootstrap: int = Field(default=200, ge=0, le=10000)
    selection_metric: str | None = Field(default=None, description="metric that decides keep/discard when "
                                         "it differs from the primary one (e.g. worst_group_auroc)")


class SupervisionConfig(_Model):
    kind: Literal["full", "mixed"] = "full"
    box_fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    pseudo_label: bool = False
    pseudo_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)


class Recipe(_Model):
    """An iteration's full configuration."""

    task_type: Literal["binary_classification", "multiclass_classification", "detection"]
    classes: list[str]
    seed: int = 0
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    debias: DebiasConfig = Field(default_factory=DebiasConfig)
    evaluation: EvalConfig = Field(default_factory=EvalConfig)
    supervision: SupervisionConfig = Field(default_factory=SupervisionConfig)
    custom_code: dict[str, str] = Field(default_factory=dict, description="hook name -> code (LLM-written)")
    reasons: dict[str, str] = Field(default_factory=dict, description="dotted field -> one-line reason")

    @model_validator(mode="before")
    @classmethod
    def _task_default_model(cls, data: Any) -> Any:
        """A task whose models are not the classification trunks gets its own default network."""
        if isinstance(data, dict) and data.get("task_type") in TASKS:
            backend = get_backend(data["task_type"])
            model = data.get("model")
            if backend.default_architecture and (model is None or (isinstance(model, dict) and
                                                                   "architecture" not in model)):
                data = {**data, "model": {**(model or {}), "architecture": backend.default_architecture}}
        return data

    @model_validator(mode="after")
    def _registered_model(self) -> Recipe:
        check_architecture(self.model.architecture, get_backend(self.task_type).model_names,
                           context=f" for {self.task_type.replace('_', ' ')}")
        return self

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class RecipePatch(_Model):
    """A proposed change: dotted field paths to new values, with the reason for it."""

    changes: dict[str, Any]
    rationale: str
    idea: str = Field(default="", description="short name of the idea, used to avoid repeating it")


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for i, key in enumerate(keys[:-1]):
        if not isinstance(node, dict) or key not in node:
            raise RecipeError(f"unknown recipe field '{dotted}'", where=f"'{'.'.join(keys[: i + 1])}'",
                              fix="use a field that exists in the Recipe schema")
        node = node[key]
    if not isinstance(node, dict) or keys[-1] not in node:
        raise RecipeError(f"unknown recipe field '{dotted}'", fix="use a field that exists in the Recipe schema")
    node[keys[-1]] = value


def apply_patch(recipe: Recipe, patch: RecipePatch | dict[str, Any]) -> Recipe:
    """Return a new, validated Recipe with ``patch`` applied. Unknown fields and bad values raise RecipeError.

    Example:
        >>> r = Recipe(task_type="binary_classification", classes=["no", "yes"])
        >>> apply_patch(r, {"optim.lr": 0.01}).optim.lr
        0.01
    """
    changes = patch.changes if isinstance(patch, RecipePatch) else patch
    data = copy.deepcopy(recipe.model_dump())
    for dotted, value in changes.items():
        _set_path(data, dotted, value)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise recipe_error(exc, "invalid value in recipe patch") from exc


def recipe_error(exc: ValidationError, what: str = "invalid recipe") -> RecipeError:
    """The first problem of a Recipe's ValidationError as a RecipeError: what, the field's dotted path, and
    the fix (the close names, for an unknown registry name)."""
    first = exc.errors()[0]
    ctx = first.get("ctx") or {}
    field = ctx.get("field") or ".".join(str(p) for p in first["loc"])
    return RecipeError(f"{what}: {first['msg']}", where=f"field '{field}'" if field else None,
                       fix=ctx.get("fix") or "send a value that matches the Recipe schema")


def check_overrides(overrides: dict[str, Any], what: str = "invalid recipe override") -> None:
    """Refuse fixed recipe fields (``--set FIELD=VALUE``) that no task's recipe accepts, before any work is done:
    unknown fields, bad values, unknown registry names (the error of the first task type is raised).
    Whether a name fits the task is known once the task is (the baseline recipe applies them again)."""
    if not overrides:
        return
    refused: list[RecipeError] = []
    for task_type in TASKS.names():
        try:
            data = copy.deepcopy(Recipe(task_type=task_type, classes=["a", "b"]).model_dump())
            for dotted, value in overrides.items():
                _set_path(data, dotted, value)
            Recipe.model_validate(data)
            return
        except ValidationError as exc:
            refused.append(recipe_error(exc, what))
        except RecipeError as exc:
            raise RecipeError(f"{what}: {exc.what}", where=exc.where, fix=exc.fix) from None
    raise refused[0]


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}." if prefix or True else k))
        return out
    return {prefix.rstrip("."): data}


def recipe_diff(old: Recipe, new: Recipe) -> dict[str, tuple[Any, Any]]:
    """Dotted field -> (old, new) for every field that differs (``reasons`` excluded)."""
    a = _flatten(old.model_dump(exclude={"reasons"}))
    b = _flatten(new.model_dump(exclude={"reasons"}))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
