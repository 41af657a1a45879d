"""Reading what a provider returned: the JSON object in a reply, pydantic errors in a line, and what a
litellm exception means (transient or not, ``Retry-After``, a readable description)."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

__all__ = ["extract_json", "validation_message", "transient_errors", "format_level", "retry_after", "describe"]


_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """Parse the JSON object in an LLM reply (tolerates code fences and prose around it).

    Example:
        >>> extract_json('Sure:\\n```json\\n{"a": 1}\\n```')
        {'a': 1}
    """
    text = (text or "").strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    fenced = _FENCE_RE.search(text)
    if fenced:
        try:
            return json.loads(fenced.group(1))
        except json.JSONDecodeError:
            pass
    start, end = text.find("{"), text.rfind("}")
    if start >= 0 and end > start:
        return json.loads(text[start:end + 1])
    raise json.JSONDecodeError("no JSON object found in the reply", text, 0)


def validation_message(exc: ValidationError, limit: int = 6) -> str:
    """A compact list of pydantic errors: ``field 'a.b': message``."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"field '{loc}': {err['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def transient_errors(litellm: Any) -> tuple[type[BaseException], ...]:
    names = ("RateLimitError", "Timeout", "APIConnectionError", "InternalServerError",
             "ServiceUnavailableError", "BadGatewayError")
    found = tuple(getattr(litellm, n) for n in names if isinstance(getattr(litellm, n, None), type))
    return found + (TimeoutError, ConnectionError)


def format_level(litellm: Any, model: str) -> int:
    try:
        if litellm.supports_response_schema(model=model):
            return 0
    except Exception:
        pass
    try:
        provider = None
        name = model
        if "/" in model:
            provider, name = model.split("/", 1)
        params = litellm.get_supported_openai_params(model=name, custom_llm_provider=provider) or []
        if "response_format" in params:
            return 1
    except Exception:
        pass
    return 2


def retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    text = str(exc).replace("\n", " ")
    text = re.sub(r"^litellm\.\w+:\s*", "", text)
    prefix = f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")
    return f"{prefix}: {text[:500]}"
