"""The questions the parser and the grounding ask, as choices with a default (:class:`~..spec.Question`).

Each builder gives a stable ``id`` so that the sidebar, the CLI and :meth:`TaskSpec.answer` can address it;
the default is always what the spec already holds, so leaving a question unanswered changes nothing.

Example:
    >>> q = confounder_action("chest_drain", "mitigate", "You named chest drains.")
    >>> q.id, q.field, q.default, [o.value for o in q.options]
    ('confounder_action:chest_drain', 'confounders.chest_drain.action', 'mitigate', ['mitigate', 'report'])
"""

from __future__ import annotations

from collections.abc import Sequence

from ..spec import Question, QuestionOption

__all__ = [
    "class_choice",
    "confounder_action",
    "dedupe",
    "modality",
    "note",
    "risk_preference",
    "task_is_detection",
]

_ACTIONS = (("mitigate", "Stop the model relying on it"), ("report", "Only measure and report its effect"))
_RISKS = (("sensitivity", "Missing a case is worse (favour sensitivity)"),
          ("specificity", "A false alarm is worse (favour specificity)"),
          ("balanced", "Both mistakes weigh the same"))
_MODALITIES = (("chest_xray", "Chest X-rays"), ("dermoscopy", "Dermoscopy"),
               ("musculoskeletal_xray", "Musculoskeletal (e.g. wrist) X-rays"), ("other", "Something else"))


def _options(pairs: Sequence[tuple[str, str]]) -> list[QuestionOption]:
    return [QuestionOption(value=v, label=label) for v, label in pairs]


def confounder_action(name: str, default: str, text: str, *, ignorable: bool = False) -> Question:
    """Mitigate or report confounder ``name`` (and, for one the data offered, leave it out)."""
    pairs = list(_ACTIONS) + ([("ignore", "Leave it out")] if ignorable else [])
    return Question(id=f"confounder_action:{name}", text=text, field=f"confounders.{name}.action",
                    options=_options(pairs), default=default)


def risk_preference(text: str, default: str = "balanced") -> Question:
    return Question(id="risk_preference", text=text, field="risk_preference", options=_options(_RISKS),
                    default=default)


def modality(text: str) -> Question:
    return Question(id="modality", text=text, field="modality", options=_options(_MODALITIES),
                    default="other")


def class_choice(qid: str, text: str, field: str, classes: Sequence[str], default: str = "") -> Question:
    """Pick one of the data's classes (a target, a metric's class)."""
    return Question(id=qid, text=text, field=field, options=_options([(c, c) for c in classes]),
                    default=default or (classes[0] if classes else ""))


def task_is_detection(text: str) -> Question:
    return Question(id="task_type", text=text, field="task_type", default="binary_classification",
                    options=_options([("detection", "Yes: draw boxes (detection)"),
                                      ("binary_classification", "No: one score per image")]))


def note(qid: str, text: str) -> Question:
    """A question with no fixed answers: the reply is a note, the spec is edited by hand."""
    return Question(id=qid, text=text)


def dedupe(questions: Sequence[Question]) -> list[Question]:
    """Questions in order, the first of each id kept."""
    seen: set[str] = set()
    kept = []
    for q in questions:
        if q.id not in seen:
            seen.add(q.id)
            kept.append(q)
    return kept
