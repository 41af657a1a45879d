"""YOLO box label files: one ``class cx cy w h`` line per box, coordinates normalised to [0, 1].

This is the layout of GRAZPEDWRI-DX (``folder_structure/yolov5/labels/*.txt``) and of most YOLO datasets.
Reading validates every line and raises :class:`~clinagent_lab.errors.DataValidationError` naming the file and
the line; writing produces files that :func:`read_yolo_labels` accepts.

Example:
    >>> box = YoloBox(3, 0.5, 0.5, 0.25, 0.5)
    >>> yolo_to_box(box, width=64, height=32)
    Box(x1=24.0, y1=8.0, x2=40.0, y2=24.0, label=3)
    >>> parse_yolo_line("3 0.5 0.5 0.25 0.5", num_classes=9)
    YoloBox(class_id=3, cx=0.5, cy=0.5, w=0.25, h=0.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataValidationError
from .base import Box

__all__ = ["YoloBox", "parse_yolo_line", "read_yolo_labels", "write_yolo_labels", "yolo_to_box",
           "box_to_yolo"]

#: slack for coordinates written with rounding (e.g. 1.0000001)
_EPS = 1e-6


@dataclass(frozen=True)
class YoloBox:
    """One YOLO box: class index and centre/size normalised by the image width and height."""

    class_id: int
    cx: float
    cy: float
    w: float
    h: float

    def line(self) -> str:
        return f"{self.class_id} {self.cx:.6f} {self.cy:.6f} {self.w:.6f} {self.h:.6f}"


def _bad(what: str, where: str, fix: str) -> DataValidationError:
    return DataValidationError(what, where=where, fix=fix)


def _class_id(token: str, num_classes: int | None, where: str) -> int:
    try:
        value = float(token)
    except ValueError:
        raise _bad(f"class id {token!r} is not a number", where,
                   "write an integer class index first") from None
    if not value.is_integer() or value < 0 or (num_classes is not None and value >= num_classes):
        known = f"0..{num_classes - 1}" if num_classes is not None else "a non-negative integer"
        raise _bad(f"unknown class id {token!r}", where, f"use a class index in {known}")
    return int(value)


def _coordinate(token: str, name: str, where: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise _bad(f"{name} value {token!r} is not a number", where, "write numbers only") from None
    if not math.isfinite(value) or value < -_EPS or value > 1 + _EPS:
        raise _bad(f"{name}={token} lies outside [0, 1]", where,
                   "YOLO coordinates are normalised by the image width/height; divide pixels by the "
                   "image size")
    return min(max(value, 0.0), 1.0)


def parse_yolo_line(line: str, *, num_classes: int | None = None, where: str = "YOLO label line") -> YoloBox:
    """Parse one ``class cx cy w h`` line.

    Raises:
        DataValidationError: wrong number of fields, a non-numeric field, a coordinate outside [0, 1], or a
            class id outside ``0..num_classes-1``.
    """
    fields = line.split()
    if len(fields) != 5:
        raise _bad(f"expected 5 fields 'class cx cy w h', found {len(fields)}", where,
                   "write one box per line as 'class cx cy w h'")
    class_id = _class_id(fields[0], num_classes, where)
    cx, cy, w, h = (_coordinate(t, n, where) for t, n in zip(fields[1:], ("cx", "cy", "w", "h")))
    return YoloBox(class_id, cx, cy, w, h)


def read_yolo_labels(path: str | Path, num_classes: int | None = None) -> list[YoloBox]:
    """All boxes of one label file; blank lines are skipped, an empty file means "no boxes"."""
    p = Path(path)
    boxes = []
    for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            boxes.append(parse_yolo_line(line, num_classes=num_classes, where=f"{p}, line {number}"))
    return boxes


def write_yolo_labels(path: str | Path, boxes: list[YoloBox]) -> Path:
    """Write ``boxes`` to ``path`` (an empty list writes an empty file: annotated, no boxes)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(b.line() + "\n" for b in boxes), encoding="utf-8")
    return p


def yolo_to_box(box: YoloBox, width: int, height: int) -> Box:
    """Absolute pixel corners ``(x1, y1, x2, y2)`` of a normalised YOLO box, clipped to the image."""
    x1 = max(0.0, (box.cx - box.w / 2) * width)
    y1 = max(0.0, (box.cy - box.h / 2) * height)
    x2 = min(float(width), (box.cx + box.w / 2) * width)
    y2 = min(float(height), (box.cy + box.h / 2) * height)
    return Box(x1=x1, y1=y1, x2=x2, y2=y2, label=box.class_id)


def box_to_yolo(box: Box, width: int, height: int) -> YoloBox:
    """The normalised YOLO form of an absolute-pixel box (clipped to the image first)."""
    x1, x2 = sorted((min(max(box.x1, 0.0), width), min(max(box.x2, 0.0), width)))
    y1, y2 = sorted((min(max(box.y1, 0.0), height), min(max(box.y2, 0.0), height)))
    return YoloBox(int(box.label), (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width,
                   (y2 - y1) / height)
