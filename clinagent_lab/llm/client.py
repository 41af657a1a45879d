"""One small interface to any LLM: validated JSON out, retries, budgets and an audit record per call.

litellm does the provider work (OpenAI, Anthropic, Ollama, vLLM and any OpenAI-compatible server); it is
imported lazily, with the bundled (offline) model cost map. API keys are read by litellm from the provider's
environment variables (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``...); this module never handles them.

Example:
    >>> resolve_model(None, env={})
    'offline'
    >>> resolve_model(None, env={"CLINAGENT_MODEL": "ollama/llama3.1"})
    'ollama/llama3.1'
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from ..errors import ClinagentError
from .audit import AuditSink, call_record
from .redact import scrub_secrets
from .replies import describe, extract_json, format_level, retry_after, transient_errors, validation_message

__all__ = [
    "OFFLINE",
    "MODEL_ENV",
    "API_BASE_ENV",
    "LLMConfig",
    "LLMUsage",
    "LLMClient",
    "LLMUnavailable",
    "LLMBudgetExceeded",
    "LLMInvalidOutput",
    "resolve_model",
    "is_offline",
    "extract_json",
    "validation_message",
]

OFFLINE = "offline"
MODEL_ENV = "CLINAGENT_MODEL"
API_BASE_ENV = "CLINAGENT_API_BASE"
T = TypeVar("T", bound=BaseModel)
Check = Callable[[Any], "str | None"]


class LLMUnavailable(ClinagentError):
    """The LLM could not give a usable answer (unreachable, rate limited, invalid output, budget spent).

    The engine catches it and continues with the offline planner.
    """

    http_status = 503


class LLMBudgetExceeded(LLMUnavailable):
    """The session's LLM token or money budget is spent."""


class LLMInvalidOutput(LLMUnavailable):
    """The LLM kept answering with output that does not validate."""


class LLMConfig(BaseModel):
    """How to reach the model and how much it may cost.

    Args:
        model: a litellm model name (``openai/gpt-4o-mini``, ``anthropic/claude-3-5-haiku-latest``,
            ``ollama/llama3.1``, ``openai/<served name>`` for vLLM) or ``"offline"``.
        api_base: server URL for local/self-hosted models (vLLM, LM Studio...); None uses the provider default
            (``OLLAMA_API_BASE`` is read by litellm for Ollama).
        timeout_s: per-request timeout.
        max_retries: retries of a request on rate limits, timeouts, connection and 5xx errors.
        max_invalid_retries: re-asks (with the validation error) when the output does not validate.
        backoff_s: first backoff delay; doubled each retry, capped at ``backoff_max_s``.
        max_tokens_total: token budget (prompt + completion) of this client; None = unlimited.
        max_cost_usd: money budget of this client (litellm's price table or the prices below);
            None = unlimited.
        max_tokens_per_call: cap on completion tokens of one call (None leaves the provider default).
        store_prompts: keep prompts/responses in the audit (else only their sha256).
        temperature: sampling temperature (0 = as deterministic as the provider allows).
        input_cost_per_token, output_cost_per_token: prices for models litellm does not know (local servers).
    """

    model_config = ConfigDict(extra="forbid")

    model: str
    api_base: str | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=20)
    max_invalid_retries: int = Field(default=2, ge=0, le=10)
    backoff_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    max_tokens_total: int | None = Field(default=200_000, ge=1)
    max_cost_usd: float | None = Field(default=2.0, ge=0)
    max_tokens_per_call: int | None = Field(default=None, ge=16)
    store_prompts: bool = True
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)


@dataclass
class LLMUsage:
    """Running totals of one client (shared by the parser and the refiner of a session)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def resolve_model(cli_value: str | None = None, *, env: Mapping[str, str] | None = None) -> str:
    """The model to use: the CLI flag, else ``$CLINAGENT_MODEL``, else ``"offline"``."""
    env = os.environ if env is None else env
    for value in (cli_value, env.get(MODEL_ENV)):
        if value and value.strip():
            return value.strip()
    return OFFLINE


def is_offline(model: str | None) -> bool:
    """True for ``None``, ``""`` and ``"offline"`` (any case)."""
    return not model or model.strip().lower() in (OFFLINE, "none", "rules")


def _import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm  # only when an LLM is configured

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


class _FormatRefused(Exception):
    """The provider refused the request's ``response_format``: ask again with a weaker JSON mode."""


class _Invalid(Exception):
    """A reply that arrived but cannot be used; the message is fed back to the model."""


class LLMClient:
    """Sends chat messages through litellm and returns a validated pydantic object.

    Args:
        config: where the model is and what it may cost.
        audit: called with one record per call (see :mod:`clinagent_lab.llm.audit`).
        usage: running totals; pass the same object to share a budget between clients.
        sleep: injectable for tests of the backoff schedule.
    """

    def __init__(self, config: LLMConfig, audit: AuditSink | None = None, *, usage: LLMUsage | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.audit: AuditSink = audit if audit is not None else (lambda record: None)
        self.usage = usage or LLMUsage()
        self._sleep = sleep
        self._format_level: int | None = None  # 0 json_schema, 1 json_object, 2 prompt-only

    @property
    def model(self) -> str:
        return self.config.model

    # --- public ------------------------------------------------------------------------------------
    def complete_json(self, purpose: str, messages: list[dict[str, str]], schema: type[T],
                      *, check: Check | None = None) -> T:
        """Ask for one JSON object matching ``schema``; re-ask with the error when it does not validate.

        Args:
            purpose: short label for the audit (``parse``, ``propose``, ``repair``).
            messages: OpenAI-style chat messages.
            schema: the pydantic model the reply must validate against.
            check: extra validation of the parsed object; returns an error message (fed back) or None.

        Raises:
            LLMBudgetExceeded: the budget is spent (before or between calls).
            LLMInvalidOutput: still invalid after ``max_invalid_retries`` re-asks.
            LLMUnavailable: the provider could not be reached or refused the request.
        """
        convo = [dict(m) for m in messages]
        for attempt in range(self.config.max_invalid_retries + 1):
            text, meta = self._complete(purpose, convo, schema)
            try:
                obj = self._validate(text, schema, check)
            except _Invalid as exc:
                self._audit(purpose, convo, text, meta, ok=False, error=f"invalid output: {exc}")
                if attempt == self.config.max_invalid_retries:
                    raise LLMInvalidOutput(
                        f"the model '{self.model}' answered {attempt + 1} time(s) with output that does not "
                        f"validate (last problem: {exc})", where=f"LLM call '{purpose}'",
                        fix="use a stronger model or continue with the offline planner") from None
                convo = convo + [{"role": "assistant", "content": scrub_secrets(text)}, {"role": "user",
                                 "content": f"Your reply was rejected: {exc}\nReply again with only one "
                                 "corrected JSON object that follows the schema and the rules."}]
                continue
            self._audit(purpose, convo, text, meta, ok=True, error=None)
            return obj
        raise AssertionError("unreachable")  # pragma: no cover

    # --- validation --------------------------------------------------------------------------------
    @staticmethod
    def _validate(text: str, schema: type[T], check: Check | None) -> T:
        try:
            data = extract_json(text)
        except json.JSONDecodeError as exc:
            raise _Invalid(f"the reply is not valid JSON ({exc.msg})") from None
        try:
            obj = schema.model_validate(data)
        except ValidationError as exc:
            raise _Invalid(f"the JSON does not match the schema: {validation_message(exc)}") from None
        problem = check(obj) if check is not None else None
        if problem:
            raise _Invalid(problem)
        return obj

    # --- transport ---------------------------------------------------------------------------------
    def _complete(self, purpose: str, messages: list[dict[str, str]],
                  schema: type[BaseModel]) -> tuple[str, dict[str, Any]]:
        """One answer from the provider: transient failures retried with backoff (tenacity, honouring
        ``Retry-After``); a refused ``response_format`` downgraded to the next weaker JSON mode."""
        litellm = _import_litellm()
        transient = transient_errors(litellm)
        while True:
            retrying = Retrying(retry=retry_if_exception_type(transient),
                                stop=stop_after_attempt(self.config.max_retries + 1),
                                wait=lambda state: self._backoff(state.attempt_number - 1,
                                                                 state.outcome.exception()),
                                sleep=lambda seconds: self._sleep(seconds), reraise=True)
            try:
                for attempt in retrying:
                    with attempt:
                        return self._call(litellm, purpose, messages, schema, attempt.retry_state.attempt_number - 1)
            except transient as exc:
                raise LLMUnavailable(f"the model '{self.model}' did not answer after {self.config.max_retries + 1} "
                                     f"attempt(s): {describe(exc)}", where=f"LLM call '{purpose}'",
                                     fix=_FIX) from None
            except _FormatRefused:
                continue  # at most twice: json_schema -> json_object -> prompt-only

    def _call(self, litellm: Any, purpose: str, messages: list[dict[str, str]], schema: type[BaseModel],
              attempt: int) -> tuple[str, dict[str, Any]]:
        self._check_budget(purpose, messages)
        kwargs = self._kwargs(litellm, messages, schema)
        start = time.monotonic()
        try:
            response = litellm.completion(**kwargs)
        except Exception as exc:
            meta = {"latency_s": time.monotonic() - start, "attempt": attempt}
            self._audit(purpose, messages, None, meta, ok=False, error=describe(exc))
            if isinstance(exc, transient_errors(litellm)):
                raise  # retried by tenacity
            if self._downgrade_format(exc):  # auth, bad request, unknown model: not worth retrying as is
                raise _FormatRefused from None
            raise LLMUnavailable(f"the model '{self.model}' refused the request: {describe(exc)}",
                                 where=f"LLM call '{purpose}'", fix=_FIX) from None
        return self._read(litellm, response, start, attempt)

    def _kwargs(self, litellm: Any, messages: list[dict[str, str]],
                schema: type[BaseModel]) -> dict[str, Any]:
        cfg = self.config
        kwargs: dict[str, Any] = {"model": cfg.model, "messages": messages, "timeout": cfg.timeout_s,
                                  "temperature": cfg.temperature, "max_retries": 0, "drop_params": True}
        if cfg.api_base:
            kwargs["api_base"] = cfg.api_base
        if cfg.max_tokens_per_call:
            kwargs["max_tokens"] = cfg.max_tokens_per_call
        fmt = self._response_format(litellm, schema)
        if fmt is not None:
            kwargs["response_format"] = fmt
        return kwargs

    def _response_format(self, litellm: Any, schema: type[BaseModel]) -> dict[str, Any] | None:
        if self._format_level is None:
            self._format_level = format_level(litellm, self.config.model)
        if self._format_level == 0:
            return {"type": "json_schema", "json_schema": {"name": schema.__name__,
                                                           "schema": schema.model_json_schema(),
                                                           "strict": False}}
        if self._format_level == 1:
            return {"type": "json_object"}
        return None

    def _downgrade_format(self, exc: Exception) -> bool:
        """On a 400 that names response_format, try the next weaker JSON mode once."""
        text = str(exc).lower()
        if self._format_level is not None and self._format_level < 2 and "response_format" in text:
            self._format_level += 1
            return True
        return False

    def _backoff(self, attempt: int, exc: Exception) -> float:
        cfg = self.config
        delay = cfg.backoff_s * (2 ** attempt)
        asked = retry_after(exc)
        if asked is not None:
            delay = max(delay, asked)
        return min(delay, cfg.backoff_max_s) * (1.0 + 0.1 * random.random())

    def _read(self, litellm: Any, response: Any, start: float, attempt: int) -> tuple[str, dict[str, Any]]:
        latency = time.monotonic() - start
        try:
            text = response.choices[0].message.content or ""
        except (AttributeError, IndexError):
            text = ""
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = self._cost(litellm, response, prompt_tokens, completion_tokens)
        self.usage.calls += 1
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += completion_tokens
        self.usage.cost_usd += cost
        return text, {"latency_s": latency, "attempt": attempt, "prompt_tokens": prompt_tokens,
                      "completion_tokens": completion_tokens, "cost_usd": cost}

    def _cost(self, litellm: Any, response: Any, prompt_tokens: int, completion_tokens: int) -> float:
        cfg = self.config
        if cfg.input_cost_per_token is not None or cfg.output_cost_per_token is not None:
            return (prompt_tokens * (cfg.input_cost_per_token or 0.0)
                    + completion_tokens * (cfg.output_cost_per_token or 0.0))
        try:
            return float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # unknown model (local servers): no price known
            return 0.0

    # --- budget ------------------------------------------------------------------------------------
    def _check_budget(self, purpose: str, messages: list[dict[str, str]]) -> None:
        cfg, used = self.config, self.usage
        estimate = sum(len(str(m.get("content", ""))) for m in messages) // 4
        problem = None
        if cfg.max_tokens_total is not None and used.total_tokens + estimate > cfg.max_tokens_total:
            problem = (f"token budget spent: {used.total_tokens} used, about {estimate} more needed, "
                       f"limit {cfg.max_tokens_total}")
        elif cfg.max_cost_usd is not None and used.cost_usd >= cfg.max_cost_usd:
            problem = f"money budget spent: ${used.cost_usd:.4f} used, limit ${cfg.max_cost_usd:.4f}"
        if problem:
            self._audit(purpose, messages, None, {"attempt": 0}, ok=False, error=problem)
            raise LLMBudgetExceeded(problem, where=f"LLM call '{purpose}'",
                                    fix="raise max_tokens_total / max_cost_usd, or continue offline")

    # --- audit -------------------------------------------------------------------------------------
    def _audit(self, purpose: str, messages: Any, response: str | None, meta: dict[str, Any], *, ok: bool,
               error: str | None) -> None:
        self.audit(call_record(model=self.model, purpose=purpose, attempt=int(meta.get("attempt", 0)),
                               messages=messages, response=response,
                               prompt_tokens=meta.get("prompt_tokens", 0),
                               completion_tokens=meta.get("completion_tokens", 0),
                               cost_usd=meta.get("cost_usd", 0.0), latency_s=meta.get("latency_s", 0.0),
                               ok=ok, error=error, store_prompts=self.config.store_prompts))


_FIX = ("check the model name, --api-base and the provider's API key environment variable; "
        "the session continues with the offline planner")
