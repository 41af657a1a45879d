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

from .errors import SpecError
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
    "Question",
    "QuestionOption",
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


class QuestionOption(_Model):
    """One answer a clinician can pick: the machine ``value`` and the ``label`` they read."""

    value: str
    label: str


class Question(_Model):
    """Something the parser could not decide, asked as a choice with a default.

    ``field`` is the dotted path the answer sets (``risk_preference``, ``confounders.chest_drain.action``);
    an empty ``field`` or an empty ``options`` list marks a question that only asks for a note.
    """

    id: str = Field(description="stable key, e.g. confounder_action:chest_drain")
    text: str = Field(description="the question in plain words")
    field: str = ""
    options: list[QuestionOption] = Field(default_factory=list)
    default: str = Field(default="", description="option value used when nobody answers")

    def __str__(self) -> str:
        return self.text

    def option(self, value: str) -> QuestionOption | None:
        return next((o for o in self.options if o.value == value), None)


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
    questions: list[Question] = Field(default_factory=list)
    parsed_by: str = "offline"

    @field_validator("questions", mode="before")
    @classmethod
    def _plain_questions(cls, value: Any) -> Any:
        """Old session files and LLM output hold plain strings: each becomes a note-only question."""
        if not isinstance(value, list):
            return value
        return [{"id": f"q{i}", "text": q} if isinstance(q, str) else q for i, q in enumerate(value, 1)]

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

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    def answer(self, question_id: str, value: str, *, by: str = "the clinician") -> TaskSpec:
        """A new spec with the question's field set to ``value``, the question gone and the decision logged.

        Raises:
            SpecError: on an unknown question id, or a value that is not among the question's options.

        Example:
            >>> spec = TaskSpec(confounders=[Confounder(name="ruler")], questions=[Question(
            ...     id="confounder_action:ruler", text="Rulers: mitigate or report?",
            ...     field="confounders.ruler.action", default="report",
            ...     options=[QuestionOption(value="mitigate", label="Stop the model relying on it"),
            ...              QuestionOption(value="report", label="Only report it")])])
            >>> new = spec.answer("confounder_action:ruler", "mitigate")
            >>> new.confounder("ruler").action, new.questions
            ('mitigate', [])
        """
        question = self.question(question_id)
        if question is None:
            known = ", ".join(q.id for q in self.questions) or "none"
            raise SpecError(f"no open question with id {question_id!r}", where="question_id",
                            fix=f"answer one of the open questions ({known})")
        option = question.option(value)
        if question.options and option is None:
            raise SpecError(f"{value!r} is not an answer to question {question_id!r}", where="value",
                            fix="pick one of: " + ", ".join(o.value for o in question.options))
        data = self.model_dump()
        if question.field:
            _set_field(data, question.field, value)
        data["questions"] = [q for q in data["questions"] if q["id"] != question_id]
        shown = option.label if option is not None else value
        data["assumptions"].append(f"Answered by {by}: {question.text} -> {shown} ({value}).")
        return TaskSpec.model_validate(data)


def _set_field(data: dict[str, Any], path: str, value: str) -> None:
    """Set a dotted ``path`` of a dumped spec; ``confounders.<name>.<key>`` addresses a confounder by name.

    ``confounders.<name>.action = "ignore"`` drops the confounder.
    """
    head, _, rest = path.partition(".")
    if head == "confounders":
        name, _, key = rest.partition(".")
        conf = next((c for c in data["confounders"] if c["name"] == name), None)
        if conf is None:
            raise SpecError(f"the spec has no confounder {name!r}", where=f"question field {path}",
                            fix="reparse the request or add the confounder first")
        if key == "action" and value == "ignore":
            data["confounders"].remove(conf)
        else:
            conf[key] = value
        return
    if head in ("target_classes", "secondary_metrics"):
        data[head] = [value]
        return
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            raise SpecError(f"question field {path!r} does not name a field of the spec", where="question")
        node = node[key]
    node[keys[-1]] = value
