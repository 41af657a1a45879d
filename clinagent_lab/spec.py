"""TaskSpec: what the clinician asked for, as typed, validated, editable data.

The parser fills it in, records what it assumed in ``assumptions`` and what it could not decide in
``questions``. A clinician reads and edits it; nothing about it is hidden.

Example:
    >>> spec = TaskSpec(task_type="binary_classification", modality="chest_xray",
    ...                 objective="detect pneumothorax", target_classes=["pneumothorax"],
    ...                 primary_metric=MetricSpec(name="auroc"))
    >>> spec.primary_metric.direction
    'maximize'
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .tasks import get_backend

__all__ = [
    "TaskType",
    "Modality",
    "MetricName",
    "RiskPreference",
    "MetricSpec",
    "Confounder",
    "Supervision",
    "Budget",
    "TaskSpec",
    "METRIC_NAMES",
    "CONFOUNDER_NAMES",
]

TaskType = Literal["binary_classification", "multiclass_classification", "detection"]
Modality = Literal["dermoscopy", "chest_xray", "musculoskeletal_xray", "other"]
MetricName = Literal[
    "auroc",
    "sensitivity_at_specificity",
    "specificity_at_sensitivity",
    "balanced_accuracy",
    "f1",
    "map50",
]
RiskPreference = Literal["sensitivity", "specificity", "balanced"]

METRIC_NAMES: tuple[str, ...] = get_args(MetricName)

#: Confounder vocabulary the parser knows (snake_case). Others are allowed too.
CONFOUNDER_NAMES: tuple[str, ...] = (
    "chest_drain",
    "ruler",
    "ink_marking",
    "metal_implant",
    "cast",
    "text_marker",
    "site",
    "scanner",
    "sex",
    "age",
    "hospital",
    "view_position",
    "hair",
    "dark_corner",
    "ecg_lead",
    "pacemaker",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class MetricSpec(_Model):
    """The metric that decides keep/discard, with its parameters."""

    name: MetricName
    direction: Literal["maximize", "minimize"] = "maximize"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_params(self) -> MetricSpec:
        for key in ("specificity", "sensitivity"):
            if key in self.params:
                value = float(self.params[key])
                if not 0.0 < value < 1.0:
                    raise ValueError(f"params.{key} must lie strictly between 0 and 1, got {value}")
                self.params[key] = value
        if self.name == "sensitivity_at_specificity" and "specificity" not in self.params:
            raise ValueError("sensitivity_at_specificity needs params.specificity (e.g. 0.8)")
        if self.name == "specificity_at_sensitivity" and "sensitivity" not in self.params:
            raise ValueError("specificity_at_sensitivity needs params.sensitivity (e.g. 0.9)")
        return self

    def key(self) -> str:
        """The key under which this metric is stored in ``val_metrics`` (its name)."""
        return self.name


class Confounder(_Model):
    """Something the model could use as a shortcut (a chest drain, a ruler, the hospital)."""

    name: str = Field(description="snake_case name, e.g. chest_drain")
    column: str | None = Field(default=None, description="metadata column holding it, once known")
    action: Literal["mitigate", "report"] = "report"

    @field_validator("name")
    @classmethod
    def _snake(cls, v: str) -> str:
        v = v.strip().lower().replace(" ", "_").replace("-", "_")
        if not v or not all(c.isalnum() or c == "_" for c in v):
            raise ValueError(f"confounder name must be snake_case, got {v!r}")
        return v


class Supervision(_Model):
    kind: Literal["full", "mixed"] = "full"
    box_fraction: float | None = Field(default=None, ge=0.0, le=1.0)


class Budget(_Model):
    max_iterations: int = Field(default=4, ge=1, le=100)
    iteration_minutes: float = Field(default=5.0, gt=0, le=24 * 60)
    total_minutes: float | None = Field(default=None, gt=0)


class TaskSpec(_Model):
    """What the clinician asked for. Serialises to the JSON printed by ``clinagent parse --json``."""

    request: str = Field(default="", description="the request as typed")
    objective: str = ""
    task_type: TaskType = "binary_classification"
    modality: Modality = "other"
    classes: list[str] | None = None
    target_classes: list[str] = Field(default_factory=list)
    primary_metric: MetricSpec = Field(default_factory=lambda: MetricSpec(name="auroc"))
    secondary_metrics: list[str] = Field(default_factory=list)
    risk_preference: RiskPreference = "balanced"
    confounders: list[Confounder] = Field(default_factory=list)
    supervision: Supervision = Field(default_factory=Supervision)
    output_format: Literal["probabilities", "labels", "boxes", "heatmap"] = "probabilities"
    budget: Budget = Field(default_factory=Budget)
    target_value: float | None = Field(default=None, description="stop once the primary metric reaches this")
    assumptions: list[str] = Field(default_factory=list)
    questions: list[str] = Field(default_factory=list)
    parsed_by: str = "offline"

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        backend = get_backend(self.task_type)
        if not backend.allows_metric(self.primary_metric.name):
            raise ValueError(f"{self.task_type} tasks are selected on one of {', '.join(backend.metrics)}, "
                             f"not {self.primary_metric.name}")
        return self

    def confounder(self, name: str) -> Confounder | None:
        return next((c for c in self.confounders if c.name == name), None)

    def mitigated_confounders(self) -> list[Confounder]:
        return [c for c in self.confounders if c.action == "mitigate" and c.column]
