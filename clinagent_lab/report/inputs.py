"""Everything a report reads from a session folder, checked before a single line of HTML is written.

A session folder holds ``session.json``, ``splits.csv`` (the frozen split), one folder per iteration and, once
the test split has been evaluated, the test predictions. :func:`load_inputs` reads them and raises
:class:`~clinagent_lab.errors.SessionError` naming the missing piece, so a report is either complete or not
written at all.

Patient ids for the bootstrap come from the first of: a ``group_id``/``patient_id`` column of the test
predictions; a ``group_id`` column of ``splits.csv``; the dataset itself, reloaded from ``session.data_path``
(its ``group_id`` column). When the data has no patient ids (``fingerprint.group_column`` is None) rows are
resampled, and the report says which of these happened (:attr:`ReportInputs.groups_source`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.formats import load_dataset
from ..errors import ClinagentError, SessionError
from ..records import SESSION_FILE, Iteration, Session

__all__ = ["GROUP_COLUMNS", "SEED_STUDY_FILE", "SPLITS_FILE", "ReportInputs", "load_inputs"]

SPLITS_FILE = "splits.csv"
SEED_STUDY_FILE = Path("seed_study") / "seed_study.json"
#: columns that carry a patient (cluster) id, in order of preference
GROUP_COLUMNS = ("group_id", "patient_id")


@dataclass
class ReportInputs:
    """A loaded, checked session folder."""

    session_dir: Path
    session: Session
    raw: dict[str, Any]
    """``session.json`` as parsed JSON: the numbers the report must reproduce exactly."""
    splits: pd.DataFrame
    predictions: pd.DataFrame | None = None
    """Test predictions (classification) or None before the final test / for detection."""
    groups: np.ndarray | None = None
    """Patient id per test prediction row, or None to resample rows."""
    groups_source: str = "rows"
    seed_study: dict[str, Any] | None = None
    run_info: dict[str, Any] = field(default_factory=dict)
    """``run_info.json`` of the best iteration (seed, package versions, evaluator hash), when present."""

    @property
    def best(self) -> Iteration | None:
        return self.session.best()

    @property
    def has_test(self) -> bool:
        return self.session.final_test is not None


def _read_raw(session_dir: Path) -> dict[str, Any]:
    return json.loads((session_dir / SESSION_FILE).read_text(encoding="utf-8"))


def _check_session(session: Session, session_dir: Path) -> None:
    if session.fingerprint is None:
        raise SessionError("the session has no dataset fingerprint", where=f"{session_dir / SESSION_FILE}, "
                           "field 'fingerprint'", fix="the session was not created completely; rerun "
                           "`clinagent run`")
    if session.final_test is not None and session.best() is None:
        raise SessionError("the session has a final test but no best iteration",
                           where=f"{session_dir / SESSION_FILE}, field 'best_iteration'",
                           fix="the session file was edited or truncated; rerun the session")


def _read_splits(session_dir: Path) -> pd.DataFrame:
    path = session_dir / SPLITS_FILE
    if not path.exists():
        raise SessionError(f"the frozen split table {SPLITS_FILE} is missing", where=str(path),
                           fix="copy the whole session folder, or rerun the session")
    splits = pd.read_csv(path, dtype=str)
    missing = {"image_id", "split"} - set(splits.columns)
    if missing:
        raise SessionError(f"{SPLITS_FILE} lacks column(s) {', '.join(sorted(missing))}", where=str(path),
                           fix="the file is not a split table written by clinagent; rerun the session")
    return splits


def _resolve(session_dir: Path, recorded: str) -> Path:
    """A recorded path, or the same file name inside the session folder when the folder was moved."""
    path = Path(recorded)
    if path.exists():
        return path
    moved = session_dir / path.name
    return moved if moved.exists() else path


def _read_predictions(session: Session, session_dir: Path) -> pd.DataFrame | None:
    final = session.final_test
    if final is None or final.predictions.endswith(".json"):
        return None
    path = _resolve(session_dir, final.predictions)
    if not path.exists():
        raise SessionError("the test predictions of the final evaluation are missing",
                           where=f"{path} (session.json field 'final_test.predictions')",
                           fix="copy the whole session folder; the test split is read only once, so the file "
                               "cannot be regenerated")
    pred = pd.read_csv(path, dtype={"image_id": str, "group_id": str, "patient_id": str})
    classes = session.best().recipe.classes
    needed = ["image_id", "label"] + [f"prob_{c}" for c in classes]
    missing = [c for c in needed if c not in pred.columns]
    if missing:
        raise SessionError(f"the test predictions lack column(s) {', '.join(missing)}", where=str(path),
                           fix="the file was not written by this version of clinagent-lab; rerun the session")
    if len(pred) != final.n_samples:
        raise SessionError(f"the test predictions have {len(pred)} rows but the session recorded "
                           f"{final.n_samples}", where=str(path), fix="the file was truncated or replaced; "
                           "restore it from the original session folder")
    return pred


def _dataset_groups(session: Session) -> pd.Series | None:

    try:
        dataset = load_dataset(session.data_path, session.data_format, **session.format_options)
    except (ClinagentError, OSError, ValueError):
        return None
    table = dataset.table
    return table.assign(image_id=table["image_id"].astype(str)).drop_duplicates("image_id") \
        .set_index("image_id")["group_id"].astype(str)


def _groups(session: Session, pred: pd.DataFrame, splits: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    for column in GROUP_COLUMNS:
        if column in pred.columns and pred[column].notna().all():
            return pred[column].astype(str).to_numpy(), f"patients ('{column}' column of the test predictions)"
    if session.fingerprint is not None and session.fingerprint.group_column is None:
        return None, "rows (the data has no patient ids: one image per patient is assumed)"
    lookups = []
    if "group_id" in splits.columns:
        lookups.append((splits.drop_duplicates("image_id").set_index("image_id")["group_id"],
                        f"patients ('group_id' of {SPLITS_FILE})"))
    lookups.append((None, f"patients ('group_id' of the dataset at {session.data_path})"))
    for table, source in lookups:
        if table is None:
            table = _dataset_groups(session)
        if table is None:
            continue
        groups = pred["image_id"].map(table)
        if groups.notna().all():
            return groups.astype(str).to_numpy(), source
    return None, ("rows: the patient ids could not be recovered (the dataset is not readable at "
                  f"{session.data_path}); intervals are too narrow when patients have several test images")


def _seed_study(session: Session) -> dict[str, Any] | None:
    best = session.best()
    if best is None or not best.output_dir:
        return None
    path = Path(best.output_dir) / SEED_STUDY_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")) | {"path": str(path)}
    except json.JSONDecodeError as exc:
        raise SessionError(f"the seed study file is not valid JSON ({exc.msg})", where=str(path),
                           fix="rerun `clinagent rerun <iteration.ipynb> --seeds ...` or delete the file") from exc


def _run_info(session: Session) -> dict[str, Any]:
    best = session.best()
    if best is None or not best.output_dir:
        return {}
    path = Path(best.output_dir) / "run_info.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def load_inputs(session_dir: str | Path) -> ReportInputs:
    """Load and check a session folder for a report.

    Raises:
        SessionError: the folder has no (valid) ``session.json``, no fingerprint, no ``splits.csv``, or its
            final test has no (complete) predictions file. The message names the missing piece.
    """
    folder = Path(session_dir)
    if folder.is_file():
        folder = folder.parent
    session = Session.load(folder)
    _check_session(session, folder)
    splits = _read_splits(folder)
    pred = _read_predictions(session, folder)
    groups, source = (None, "rows") if pred is None else _groups(session, pred, splits)
    return ReportInputs(session_dir=folder, session=session, raw=_read_raw(folder), splits=splits,
                        predictions=pred, groups=groups, groups_source=source, seed_study=_seed_study(session),
                        run_info=_run_info(session))
