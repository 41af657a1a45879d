"""What the handlers and the session manager share: errors with their HTTP status, the data-path check,
JSON conversion, and the lazily imported engine class."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import DataFormatError, SessionError

__all__ = ["BusyError", "UnknownSessionError", "PathOutsideRootError", "ENGINE_PATH", "load_engine_class",
           "inside_root", "resolve_data_path", "to_jsonable"]

ENGINE_PATH = "clinagent_lab.agent.engine:Engine"


class BusyError(SessionError):
    """Something is already running (an iteration, or the loop around it)."""

    http_status = 409


class UnknownSessionError(SessionError):
    """No session with that id exists under the sessions folder."""

    http_status = 404


class PathOutsideRootError(DataFormatError):
    """A data path points outside the folder the Jupyter server serves."""

    http_status = 403


def load_engine_class(path: str = ENGINE_PATH) -> Any:
    """Import ``module:attr`` on first use (the engine pulls in heavy libraries)."""
    module, _, attr = path.partition(":")
    return getattr(__import__(module, fromlist=[attr]), attr)


def inside_root(root: Path, given: str, field: str) -> Path:
    """``given`` (relative to ``root`` or absolute) resolved; it must lie inside ``root``.

    Raises:
        PathOutsideRootError: the path escapes ``root`` (403).
    """
    root = Path(root).resolve()
    raw = Path(given).expanduser()
    path = (raw if raw.is_absolute() else root / raw).resolve()
    if path != root and root not in path.parents:
        raise PathOutsideRootError(f"{field.replace('_', ' ')} '{given}' is outside the folder this server serves",
                                   where=f"field '{field}'",
                                   fix=f"move or link it under {root} and give a path relative to it")
    return path


def resolve_data_path(root: Path, data_path: str) -> Path:
    """Resolve ``data_path`` (relative to ``root`` or absolute) and check it lies inside ``root`` and exists.

    Raises:
        PathOutsideRootError: the path escapes ``root`` (403).
        DataFormatError: the path does not exist (400).
    """
    path = inside_root(root, data_path, "data_path")
    if not path.exists():
        raise DataFormatError(f"data path '{data_path}' does not exist", where="field 'data_path'",
                              fix="check the spelling, or pick the folder in the file browser and use "
                                  "'use file browser selection'")
    return path


def to_jsonable(obj: Any) -> Any:
    """pydantic models, dataclasses, paths and tuples -> plain JSON values."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
