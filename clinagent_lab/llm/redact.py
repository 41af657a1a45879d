"""What may leave the machine: redaction of free text and privacy-safe payload builders.

The rule: an LLM sees the TaskSpec, aggregate dataset statistics (counts, class balance, image sizes,
association figures), recipes, metric summaries, code and redacted tracebacks. It never sees the data root,
file names, image ids, group (patient) ids, metadata values, pixels or per-sample outputs.

Example:
    >>> r = Redactor(paths=["/data/isic"], ids=["ISIC_0000123"])
    >>> r("cannot read /data/isic/train/ISIC_0000123.jpg for ISIC_0000123")
    'cannot read <data-path> for <id>'
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..records import Annotation, Iteration
    from ..data.base import DatasetFingerprint, LoadedDataset
    from ..recipe import Recipe
    from ..spec import TaskSpec

__all__ = [
    "Redactor",
    "redact",
    "scrub_secrets",
    "sensitive_terms",
    "trim_traceback",
    "spec_payload",
    "fingerprint_payload",
    "recipe_payload",
    "metrics_payload",
    "iteration_payload",
    "annotation_payload",
    "privacy_payload",
]

MIN_ID_LENGTH = 4
"""Identifiers shorter than this are not redacted one by one (``"1"`` would erase every digit)."""

MAX_METRIC_DEPTH = 4
"""Nested metric dicts deeper than this many levels below the top are dropped."""

_SECRET_RE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|xox[baprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{30,})"
)
_SECRET_ENV_SUFFIXES = ("_API_KEY", "_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
_PKG_RE = re.compile(r"(?:[A-Za-z]:)?[\\/][^\s'\"<>|]*?[\\/](?:site|dist)-packages[\\/]([^\s'\"<>|,:)]+)")
_STDLIB_RE = re.compile(r"(?:[A-Za-z]:)?[\\/][^\s'\"<>|]*?[\\/]lib[\\/]python3\.\d+[\\/]([^\s'\"<>|,:)]+)")
_PATH_RE = re.compile(
    r"(?<![\w.<>-])(?:~|[A-Za-z]:)?(?:[\\/][^\s'\"<>|,:;()\[\]{}\\/]+){1,}[\\/]?(?=$|[\s'\",:;()\[\]{}])"
)
_FILE_RE = re.compile(
    r"(?<![\w<])[\w\-.]{0,80}?[\w\-]\.(?:png|jpe?g|dcm|dicom|npz|npy|tiff?|bmp|gif|nii(?:\.gz)?|nrrd|mha"
    r"|h5|hdf5|pt|pth|ckpt|csv|tsv|xlsx?|parquet|json)\b",
    re.IGNORECASE,
)
_URL_RE = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s'\"<>]+", re.IGNORECASE)
_BLOB_RE = re.compile(r"[A-Za-z0-9+/=_\-]{64,}")
_ARRAY_RE = re.compile(r"(?:-?\d+(?:\.\d+)?(?:e[-+]?\d+)?[,\s]+){16,}-?\d+(?:\.\d+)?", re.IGNORECASE)


def scrub_secrets(text: str) -> str:
    """Replace API keys and tokens (``sk-...``, ``Bearer ...``, values of ``*_API_KEY`` env vars) by a marker.

    Example:
        >>> scrub_secrets("key sk-abcdefghijklmnop used")
        'key <secret> used'
    """
    for name, value in os.environ.items():
        if value and len(value) >= 8 and name.upper().endswith(_SECRET_ENV_SUFFIXES) and value in text:
            text = text.replace(value, "<secret>")
    return _SECRET_RE.sub("<secret>", text)


def _path_sub(match: re.Match[str]) -> str:
    token = match.group(0)
    if token.endswith(".py"):  # source files of a traceback: keep only the file name
        return "<path>/" + re.split(r"[\\/]", token)[-1]
    return "<path>"


@dataclass
class Redactor:
    """Removes data paths, known identifiers and other sensitive strings from free text.

    Args:
        paths: data root(s) and other folders whose contents are private; anything under them is removed.
        ids: image ids, group/patient ids, file stems, metadata values (shorter than
            :data:`MIN_ID_LENGTH` characters are ignored).
    """

    paths: Sequence[str] = ()
    ids: Iterable[str] = ()
    _roots: list[str] = field(init=False, repr=False)
    _ids_re: re.Pattern[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        roots: set[str] = set()
        for p in self.paths:
            if not p:
                continue
            p = str(p).rstrip("/\\")
            if len(p) < 2:
                continue
            roots.add(p)
            try:
                roots.add(os.path.realpath(p))
            except (OSError, ValueError):  # pragma: no cover - odd path strings
                pass
        self._roots = sorted(roots, key=len, reverse=True)
        terms = sorted({str(i) for i in self.ids if i is not None and len(str(i)) >= MIN_ID_LENGTH},
                       key=len, reverse=True)
        alternatives = "|".join(map(re.escape, terms))
        self._ids_re = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])") if terms else None

    def __call__(self, text: str | None) -> str:
        """Return ``text`` without private paths, ids, file names, secrets, blobs or long number arrays."""
        if not text:
            return ""
        text = _URL_RE.sub("<url>", str(text))
        for root in self._roots:
            text = re.sub(re.escape(root) + r"(?:[\\/][^\s'\"<>|,;()\[\]{}]*)?", "<data-path>", text)
        if self._ids_re is not None:
            text = self._ids_re.sub("<id>", text)
        text = _PKG_RE.sub(lambda m: m.group(1), text)
        text = _STDLIB_RE.sub(lambda m: m.group(1), text)
        text = _PATH_RE.sub(_path_sub, text)
        text = _FILE_RE.sub("<file>", text)
        text = _ARRAY_RE.sub("<array>", text)
        text = _BLOB_RE.sub("<blob>", text)
        return scrub_secrets(text)

    @classmethod
    def for_dataset(cls, dataset: LoadedDataset, *, extra_paths: Sequence[str] = ()) -> Redactor:
        """A redactor that knows the dataset's root, ids, file names and metadata values."""
        return cls(paths=[str(dataset.root), *extra_paths], ids=sensitive_terms(dataset))

    @classmethod
    def for_fingerprint(cls, fingerprint: DatasetFingerprint | None,
                        *, extra_paths: Sequence[str] = ()) -> Redactor:
        """A redactor that knows only the data root (when the dataset table is not at hand)."""
        roots = [fingerprint.root] if fingerprint is not None and fingerprint.root else []
        return cls(paths=[*roots, *extra_paths])


def redact(text: str | None, *, paths: Sequence[str] = (), ids: Iterable[str] = ()) -> str:
    """Remove file paths, known ids and anything under the data root from ``text``.

    Example:
        >>> redact('File "/home/u/data/img_0042.png" not found', paths=["/home/u/data"])
        'File "<data-path>" not found'
    """
    return Redactor(paths=paths, ids=ids)(text)


def sensitive_terms(dataset: LoadedDataset) -> list[str]:
    """Image ids, group ids, file names and stems, and every string metadata value of ``dataset``."""
    table = dataset.table
    terms: set[str] = set()
    for column in ("image_id", "group_id"):
        if column in table:
            terms.update(str(v) for v in table[column].dropna().unique())
    if "path" in table:
        for p in table["path"].dropna().unique():
            base = re.split(r"[\\/]", str(p))[-1]
            terms.update({base, base.split(".")[0]})
    protected = {*dataset.classes, *dataset.metadata_columns, "train", "val", "test"}
    for column in dataset.metadata_columns:
        if column in table:
            terms.update(v for v in table[column].dropna().unique() if isinstance(v, str))
    return sorted(t for t in terms if t not in protected)


def trim_traceback(text: str, *, max_lines: int = 40, max_chars: int = 4000) -> str:
    """Keep the end of a traceback (where the error is), at most ``max_lines`` lines / ``max_chars`` chars."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text or "")  # ANSI colours from IPython
    lines = text.rstrip().splitlines()
    if len(lines) > max_lines:
        lines = ["... (earlier lines omitted)"] + lines[-max_lines:]
    out = "\n".join(lines)
    return out if len(out) <= max_chars else "... " + out[-max_chars:]


# --- payload builders ---------------------------------------------------------------------------------

def spec_payload(spec: TaskSpec, redactor: Redactor) -> dict[str, Any]:
    """The TaskSpec, with the request text and free-text fields redacted."""
    data = spec.model_dump(mode="json")
    for key in ("request", "objective"):
        data[key] = redactor(data.get(key))
    data["assumptions"] = [redactor(a) for a in data.get("assumptions", [])]
    data["questions"] = [{**q, "text": redactor(q["text"])} for q in data.get("questions", [])]
    return data


_FINGERPRINT_FIELDS = ("format", "task_type", "classes", "n_images", "class_counts", "split_counts",
                       "splits_given", "image_sizes", "channels", "group_column", "n_groups",
                       "metadata_columns", "imbalance_ratio", "n_boxes", "box_fraction", "box_classes",
                       "leakage_checked")
_ASSOCIATION_FIELDS = ("column", "kind", "n_missing", "n_levels", "auroc", "cramers_v", "p_value", "flagged")


def fingerprint_payload(fingerprint: DatasetFingerprint | None, redactor: Redactor) -> dict[str, Any] | None:
    """Aggregate statistics only: no root, no content hash, no free-text notes or warnings (they can quote
    file names and metadata values); the number of warnings is kept."""
    if fingerprint is None:
        return None
    data = fingerprint.model_dump(mode="json")
    out = {k: data[k] for k in _FINGERPRINT_FIELDS if k in data}
    out["split_rule"] = redactor(data.get("split_rule"))
    out["associations"] = [{k: a.get(k) for k in _ASSOCIATION_FIELDS} for a in data.get("associations", [])]
    out["n_warnings"] = len(data.get("warnings", []))
    return out


def recipe_payload(recipe: Recipe, redactor: Redactor) -> dict[str, Any]:
    """The Recipe as data; a local weights path is replaced by a marker; every other string (reasons, format
    options) is redacted; hook code is sent as written."""
    data = recipe.model_dump(mode="json")
    code = data.pop("custom_code", {})
    if data["model"].get("pretrained_path"):
        data["model"]["pretrained_path"] = "<local weights file>"
    data = _redact_strings(data, redactor)
    data["custom_code"] = code
    return data


def _redact_strings(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        return {redactor(str(k)): _redact_strings(v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_strings(v, redactor) for v in value]
    return value


def _summary(value: Any, redactor: Redactor, depth: int) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return round(float(value), 6) if isinstance(value, float) else value
    if isinstance(value, str):
        return redactor(value)[:200]
    if isinstance(value, Mapping) and depth <= MAX_METRIC_DEPTH and len(value) <= 64:
        out = {redactor(str(k)): _summary(v, redactor, depth + 1) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _DROP}
    return _DROP


_DROP = object()


def metrics_payload(metrics: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    """Scalar summaries only; nested dicts are kept down to :data:`MAX_METRIC_DEPTH` levels below the top
    (e.g. ``confounders.chest_drain.dependence.partial_correlation``); lists, curves and per-sample arrays
    are dropped."""
    out = _summary(dict(metrics or {}), redactor, 0)
    return out if isinstance(out, dict) else {}


def iteration_payload(iteration: Iteration, redactor: Redactor, *,
                      with_recipe: bool = False) -> dict[str, Any]:
    """One iteration: idea, rationale, status, decision, metric summary, redacted error; no paths."""
    out: dict[str, Any] = {
        "index": iteration.index,
        "idea": redactor(iteration.idea),
        "rationale": redactor(iteration.rationale),
        "status": iteration.status,
        "decision": iteration.decision,
        "decision_reason": redactor(iteration.decision_reason),
        "selection_value": iteration.selection_value,
        "val_metrics": metrics_payload(iteration.val_metrics, redactor),
        "wall_s": iteration.wall_s,
    }
    if iteration.error:
        out["error"] = {k: redactor(str(v))[:1000] for k, v in iteration.error.items()
                        if k in ("ename", "evalue", "cell", "cell_index", "hook", "message")}
    if with_recipe:
        out["recipe"] = recipe_payload(iteration.recipe, redactor)
    return out


def annotation_payload(annotation: Annotation, redactor: Redactor) -> dict[str, Any]:
    """A clinician annotation: kind, redacted text, structured value (thresholds, group bounds)."""
    value = metrics_payload(annotation.value, redactor)
    return {"kind": annotation.kind, "text": redactor(annotation.text), "value": value,
            "iteration": annotation.iteration, "applied_in": annotation.applied_in}


def privacy_payload(*, spec: TaskSpec | None = None, fingerprint: DatasetFingerprint | None = None,
                    recipe: Recipe | None = None, history: Sequence[Iteration] = (),
                    best: Iteration | None = None, annotations: Sequence[Annotation] = (),
                    tried_ideas: Iterable[str] = (), redactor: Redactor | None = None,
                    max_history: int = 8) -> dict[str, Any]:
    """Everything the LLM may see about a session, built only from the allowed pieces.

    Args:
        spec, fingerprint, recipe, history, best, annotations, tried_ideas: the session state.
        redactor: defaults to one that knows the fingerprint's root.
        max_history: the last this-many iterations are sent.
    """
    red = redactor or Redactor.for_fingerprint(fingerprint)
    out: dict[str, Any] = {}
    if spec is not None:
        out["task_spec"] = spec_payload(spec, red)
    if fingerprint is not None:
        out["dataset"] = fingerprint_payload(fingerprint, red)
    if recipe is not None:
        out["current_recipe"] = recipe_payload(recipe, red)
    if history:
        out["history"] = [iteration_payload(it, red) for it in list(history)[-max_history:]]
    if best is not None:
        out["best_iteration"] = iteration_payload(best, red)
    if annotations:
        out["clinician_annotations"] = [annotation_payload(a, red) for a in annotations]
    ideas = sorted({red(i) for i in tried_ideas if i})
    if ideas:
        out["tried_ideas"] = ideas
    return out
