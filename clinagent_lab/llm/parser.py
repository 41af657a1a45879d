"""Parse a clinician's request into a TaskSpec with an LLM, starting from the offline parser's draft.

The LLM sees the (redacted) request, the offline draft and aggregate dataset statistics; its answer must
validate as a :class:`~clinagent_lab.spec.TaskSpec` and name only classes and metadata columns the dataset
has. If it cannot give such an answer, the offline spec is returned with
``parsed_by = "offline (llm failed: <reason>)"``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ClinagentError, IntentError
from ..spec import TaskSpec
from ..tasks import get_backend
from .audit import AuditSink
from .client import LLMClient, LLMUnavailable, is_offline
from .prompts import parse_messages
from .redact import Redactor, fingerprint_payload, spec_payload
from .refiner import build_client

if TYPE_CHECKING:  # pragma: no cover
    from ..data.base import DatasetFingerprint

__all__ = ["parse_with_llm", "build_parser", "spec_problem", "offline_parse"]

OfflineParser = Callable[..., TaskSpec]
Parser = Callable[[str, "DatasetFingerprint | None"], TaskSpec]


def offline_parse(text: str, fingerprint: DatasetFingerprint | None = None) -> TaskSpec:
    """Call ``clinagent_lab.intent.parse_offline``, passing the fingerprint when it accepts one."""
    try:
        from ..intent import parse_offline  # the offline rule parser, re-exported by the package
    except ImportError:
        from ..intent.offline import parse_offline  # deferred: heavy (rapidfuzz)

    params = inspect.signature(parse_offline).parameters
    if "fingerprint" in params:
        return parse_offline(text, fingerprint=fingerprint)
    if len(params) >= 2:
        return parse_offline(text, fingerprint)
    return parse_offline(text)


def spec_problem(spec: TaskSpec, fingerprint: DatasetFingerprint | None) -> str | None:
    """Why an LLM-written spec does not fit the dataset (fed back to the model), or None."""
    if fingerprint is None:
        return None
    known = set(fingerprint.classes)
    unknown = sorted({*(spec.classes or []), *spec.target_classes} - known)
    if unknown:
        return f"classes {unknown} are not in the dataset; its classes are {sorted(known)}"
    columns = set(fingerprint.metadata_columns)
    bad = sorted(c.column for c in spec.confounders if c.column and c.column not in columns)
    if bad:
        return f"confounder columns {bad} are not in the dataset; its metadata columns are {sorted(columns)}"
    if get_backend(spec.task_type).has_boxes and not get_backend(fingerprint.task_type).has_boxes:
        return f"task_type '{spec.task_type}' needs boxes but the dataset has none; use a classification task type"
    return None


def parse_with_llm(text: str, fingerprint: DatasetFingerprint | None, client: LLMClient, *,
                   offline: OfflineParser | None = None, redactor: Redactor | None = None) -> TaskSpec:
    """The LLM's TaskSpec for ``text``, or the offline one (with the reason) when the LLM fails.

    Args:
        text: the clinician's request.
        fingerprint: the dataset's fingerprint (aggregate statistics only are sent), or None.
        client: the LLM client.
        offline: the offline parser (defaults to ``clinagent_lab.intent.parse_offline``).
        redactor: removes paths and identifiers from the request; defaults to the fingerprint's root.

    Raises:
        IntentError: the request is empty or the offline parser refused it and the LLM failed too.
    """
    if not text or not text.strip():
        raise IntentError("the request is empty", fix="describe the model you want in one sentence")
    offline = offline or offline_parse
    red = redactor or Redactor.for_fingerprint(fingerprint)
    draft: TaskSpec | None = None
    offline_error: ClinagentError | None = None
    try:
        draft = offline(text, fingerprint)
    except ClinagentError as exc:
        offline_error = exc
    messages = parse_messages(red(text), spec_payload(draft, red) if draft else None,
                              fingerprint_payload(fingerprint, red), TaskSpec)
    try:
        spec = client.complete_json("parse", messages, TaskSpec,
                                    check=lambda s: spec_problem(s, fingerprint))
    except LLMUnavailable as exc:
        if draft is None:
            raise offline_error or exc
        return draft.model_copy(update={"parsed_by": f"offline (llm failed: {exc.what.rstrip('.')})"})
    return spec.model_copy(update={"request": text, "parsed_by": f"llm:{client.model}"})


def build_parser(model: str, audit: AuditSink | None = None, *, client: LLMClient | None = None,
                 redactor: Redactor | None = None, offline: OfflineParser | None = None,
                 **config: Any) -> Parser:
    """A ``parse(text, fingerprint) -> TaskSpec`` for the engine: offline, or the LLM with offline fallback.

    Args:
        model: ``"offline"`` or a litellm model name.
        audit: sink for one record per LLM call.
        client: an existing client to share the budget and audit with the refiner.
        redactor, offline: see :func:`parse_with_llm`.
        **config: :class:`~clinagent_lab.llm.client.LLMConfig` fields when no client is given.
    """
    offline_fn = offline or offline_parse
    if is_offline(model):
        return lambda text, fingerprint=None: offline_fn(text, fingerprint)
    if client is None:
        client = build_client(model, audit=audit, **config)
    llm = client

    def parse(text: str, fingerprint: DatasetFingerprint | None = None) -> TaskSpec:
        return parse_with_llm(text, fingerprint, llm, offline=offline_fn, redactor=redactor)

    return parse
