"""The optional LLM planner, reached through litellm (any hosted provider, Ollama, vLLM...).

Importing this package is light: litellm is imported only when a call is made. Nothing with pixels or patient
identifiers is sent: prompts are built from :mod:`clinagent_lab.llm.redact` payloads (spec, aggregate dataset
statistics, recipes, metric summaries, code and redacted tracebacks). See ``docs/llm.md``.

Entry points for the engine:

- :func:`build_refiner` (model name -> a ``Refiner``; ``"offline"`` returns the fallback unchanged),
- :func:`build_parser` (model name -> ``parse(text, fingerprint) -> TaskSpec``),
- :func:`resolve_model` (CLI flag, then ``CLINAGENT_MODEL``, else ``"offline"``).
"""

from __future__ import annotations

from .audit import JsonlAudit, MemoryAudit, session_audit
from .client import (
    OFFLINE,
    LLMBudgetExceeded,
    LLMClient,
    LLMConfig,
    LLMInvalidOutput,
    LLMUnavailable,
    LLMUsage,
    is_offline,
    resolve_model,
)
from .codecheck import HOOKS, check_code
from .parser import build_parser, parse_with_llm
from .redact import Redactor, privacy_payload
from .refiner import LLMRefiner, build_client, build_refiner, may_repair, repair_attempts

__all__ = [
    "OFFLINE",
    "HOOKS",
    "JsonlAudit",
    "LLMBudgetExceeded",
    "LLMClient",
    "LLMConfig",
    "LLMInvalidOutput",
    "LLMRefiner",
    "LLMUnavailable",
    "LLMUsage",
    "MemoryAudit",
    "Redactor",
    "build_client",
    "build_parser",
    "build_refiner",
    "check_code",
    "is_offline",
    "may_repair",
    "parse_with_llm",
    "privacy_payload",
    "repair_attempts",
    "resolve_model",
    "session_audit",
]
