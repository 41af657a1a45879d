"""The HTML report: sections, numbers equal to session.json, offline, bootstrap intervals, errors, atomic write."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup
from sklearn.metrics import roc_auc_score, roc_curve

from clinagent_lab.errors import SessionError
from clinagent_lab.evaluation import bootstrap_ci
from clinagent_lab.report import load_inputs, section_ids, write_report
from clinagent_lab.report.markup import path_get

try:
    from report_session import CLASSES3, make_session
except ImportError:  # tests collected as a package
    from tests.report_session import CLASSES3, make_session

BASE_SECTIONS = ["request", "data", "iterations", "test", "model-card", "reproducibility"]


def _save_maps(session_dir: Path) -> None:
    """Grad-CAM maps as the notebooks save them: the baseline looks at the drain, the kept model does not."""
    from clinagent_lab.evaluation.saliency import Saliency
    from clinagent_lab.records import Session

    session = Session.load(session_dir)
    masks = np.zeros((4, 8, 8), dtype=bool)
    masks[:2, 2, 1:7] = True
    for it in session.iterations:
        maps = np.full((4, 8, 8), 0.1)
        if it.decision == "baseline":
            maps[masks] = 5.0
        Saliency(image_ids=["a", "b", "c", "d"], labels=np.array([0, 1, 0, 1]), groups=np.array([1, 1, 0, 0]),
                 images=np.random.default_rng(0).random((4, 8, 8)), maps=maps, masks=masks,
                 probs=np.array([0.2, 0.9, 0.1, 0.8]), target="pneumothorax", confounder="chest_drain"
                 ).save(it.output_dir)


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = make_session(tmp_path_factory.mktemp("binary"), seed_study=True)
    _save_maps(folder)
    return folder


@pytest.fixture(scope="module")
def binary_report(binary: Path) -> tuple[BeautifulSoup, dict, str]:
    path = write_report(binary)
    text = path.read_text(encoding="utf-8")
    return BeautifulSoup(text, "html.parser"), json.loads((binary / "session.json").read_text()), text


def _shown(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}"


def _check_numbers(soup: BeautifulSoup, raw: dict) -> list[list]:
    paths = []
    for span in soup.select("[data-src]"):
        path = json.loads(span["data-src"])
        value = path_get(raw, path)
        shown = span.get_text()
        assert shown == ("—" if value is None else _shown(value)), (path, value, shown)
        paths.append(path)
    return paths


def _metric_row(soup: BeautifulSoup, key: str):
    cell = soup.select_one(f'#test-metrics [data-ci="{key}"]')
    assert cell is not None, key
    return float(cell.select_one(".ci-low").get_text()), float(cell.select_one(".ci-high").get_text())


# ------------------------------------------------------------------------------------------------- sections


def test_default_path_and_every_section_present(binary: Path, binary_report) -> None:
    soup, _, _ = binary_report
    assert (binary / "report.html").exists()
    ids = [s["id"] for s in soup.find_all("section")]
    assert ids == BASE_SECTIONS[:4] + ["saliency"] + BASE_SECTIONS[4:] + ["seed-study"] == section_ids()
    for sid in ids:  # every section has a visible heading and a nav link
        assert soup.select_one(f"#{sid} > h2").get_text().strip()
        assert soup.select_one(f'nav a[href="#{sid}"]') is not None


def test_saliency_section_shows_baseline_beside_the_kept_model(binary_report) -> None:
    soup, _, _ = binary_report
    section = soup.select_one("#saliency")
    img = section.select_one("figure img")
    assert img["src"].startswith("data:image/png;base64,")
    rows = [[td.get_text() for td in tr.find_all("td")] for tr in section.select("tbody tr")]
    assert [r[0].split(" (")[0] for r in rows] == ["baseline", "kept"]
    base_share, kept_share = (float(r[4].rstrip("%")) for r in rows)
    assert (base_share, kept_share) == (83.8, 9.4)  # 30 of 35.8 units inside the drain, then 0.6 of 6.4
    assert "inside the chest_drain" in section.get_text()


def test_seed_study_section_only_when_a_study_exists(tmp_path: Path) -> None:
    soup = BeautifulSoup(write_report(make_session(tmp_path), tmp_path / "r.html").read_text(), "html.parser")
    assert [s["id"] for s in soup.find_all("section")] == BASE_SECTIONS


def test_request_section_shows_text_spec_and_annotations(binary_report) -> None:
    soup, raw, _ = binary_report
    request = soup.select_one("#request")
    assert request.select_one("blockquote").get_text() == raw["request"]
    text = request.get_text()
    for expected in ("chest_drain (column chest_drain, mitigate)", "Is sex a concern?",
                     "Risk preference: balanced (default).", "I want 90% sensitivity", '{"sensitivity": 0.9}'):
        assert expected in text


def test_data_section_counts_and_shortcut_audit(binary_report) -> None:
    soup, raw, _ = binary_report
    data = soup.select_one("#data").get_text()
    assert "grouped by patient" in data and "patient_id" in data and "passed" in data
    assert "0.812" in data and "0.612" in data  # association AUROC and Cramér's V
    assert raw["fingerprint"]["content_hash"] in data


def test_iterations_table_and_plot(binary_report) -> None:
    soup, raw, _ = binary_report
    rows = soup.select("#iterations table.iterations tbody tr")
    assert len(rows) == 2
    assert "debias.method" in rows[1].get_text() and "gradient_reversal" in rows[1].get_text()
    assert "kept" in rows[1].get_text() and "first recipe" in rows[0].get_text()
    svg = soup.select_one("#iterations svg.figure")
    assert svg["data-figure"] == "iterations" and svg.title.get_text() == "Validation metric over iterations"
    line = _vertices(svg.select_one("#iterations-selection path")["d"])
    assert len(line) == 2 and line[1][1] < line[0][1]  # iteration 2 is higher (SVG y grows downwards)
    kept = [(float(u["x"]), float(u["y"])) for u in svg.select("#iterations-kept use")]
    assert kept == pytest.approx(line)  # both kept (baseline, then better): filled markers on the line
    assert svg.select_one("#iterations-discarded") is None


def _vertices(d: str) -> list[tuple[float, float]]:
    """The (x, y) points of an SVG path's M/L commands."""
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]\s*(-?[\d.]+)\s+(-?[\d.]+)", d)]


def test_roc_figure_is_a_matplotlib_svg_with_the_curve_and_the_operating_point(binary: Path, binary_report) -> None:
    soup, raw, _ = binary_report
    svg = soup.select_one('#test svg.figure[data-figure="roc"]')
    assert svg is not None and svg.title.get_text() == "ROC (test split)"
    assert "Matplotlib" not in str(svg)  # no metadata block: no date, no creator line
    pred = pd.read_csv(binary / "test_predictions.csv")
    fpr, tpr, _ = roc_curve(pred["label"], pred["prob_pneumothorax"], drop_intermediate=False)
    curve = _vertices(svg.select_one("#roc-curve path")["d"])
    assert len(curve) == len(np.unique(np.c_[fpr, tpr], axis=0))  # one vertex per ROC point
    # the drawn x coordinates are the ROC's false-positive rates under one linear axis scale
    xs = np.sort(np.array(curve)[:, 0])
    fx = np.unique(np.c_[fpr, tpr], axis=0)[:, 0]
    ax_x, bx = np.polyfit(fx, xs, 1)
    assert ax_x > 0 and np.allclose(xs, ax_x * fx + bx, atol=0.01)
    m = raw["final_test"]["metrics"]
    [marker] = svg.select("#roc-operating-point use")
    px, py = float(marker["x"]), float(marker["y"])
    assert px == pytest.approx(ax_x * (1 - m["specificity"]) + bx, abs=0.01)
    assert (round(px, 2), round(py, 2)) in {(round(x, 2), round(y, 2)) for x, y in curve}  # a vertex of the curve
    assert svg.select_one("#roc-band path") is not None  # the bootstrap band
    legend = svg.get_text()
    assert f"AUROC {m['auroc']:.3f}" in legend and "operating point" in legend


def test_report_is_reproducible_byte_for_byte(binary: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    first = write_report(binary, tmp_path / "a.html").read_bytes()
    second = write_report(binary, tmp_path / "b.html").read_bytes()
    assert first == second and b"2026-01-01T00:00:00+00:00" in first
    ids = re.findall(rb' id="([^"]+)"', first)
    assert len(ids) == len(set(ids))  # several SVGs in one page: no id twice


# ------------------------------------------------------------------------------------------------- numbers


def test_numbers_equal_session_json(binary_report) -> None:
    soup, raw, _ = binary_report
    paths = _check_numbers(soup, raw)
    for required in (["final_test", "metrics", "auroc"], ["final_test", "metrics", "primary"],
                     ["final_test", "metrics", "calibration", "ece"], ["final_test", "metrics", "calibration", "slope"],
                     ["final_test", "metrics", "confusion", "tp"], ["iterations", 1, "val_metrics", "threshold"],
                     ["iterations", 0, "selection_value"], ["fingerprint", "associations", 0, "auroc"],
                     ["final_test", "metrics", "confounders", "chest_drain", "reliance", "excess_fpr"],
                     ["final_test", "metrics", "confounders", "chest_drain", "dependence", "partial_correlation"]):
        assert required in paths, required


def test_multiclass_report_numbers_confusion_and_per_class(tmp_path: Path) -> None:
    folder = make_session(tmp_path, classes=CLASSES3)
    soup = BeautifulSoup(write_report(folder).read_text(), "html.parser")
    raw = json.loads((folder / "session.json").read_text())
    paths = _check_numbers(soup, raw)
    assert ["final_test", "metrics", "confusion_matrix", 2, 2] in paths
    assert ["final_test", "metrics", "per_class", "MEL", "auroc"] in paths
    assert ["final_test", "metrics", "auroc_macro"] in paths
    _metric_row(soup, "auroc_macro")


# ------------------------------------------------------------------------------------------------- offline


def test_report_is_self_contained(binary_report) -> None:
    soup, _, text = binary_report
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', text, re.IGNORECASE)
    assert "@import" not in text and "url(http" not in text
    assert soup.find("script") is None and soup.find("link") is None
    assert soup.select_one("style") is not None and "font-family" in soup.select_one("style").get_text()
    assert len(soup.select("svg.figure")) >= 3  # iterations, ROC, reliability: inline


def test_session_text_is_escaped_by_the_templates(tmp_path: Path) -> None:
    folder = make_session(tmp_path)
    _edit(folder, lambda raw: raw.update(request="<script>alert('x')</script> & <b>drains</b>"))
    text = write_report(folder).read_text()
    soup = BeautifulSoup(text, "html.parser")
    assert soup.find("script") is None and soup.select_one("#request b") is None
    assert soup.select_one("#request blockquote").get_text() == "<script>alert('x')</script> & <b>drains</b>"
    assert "&lt;script&gt;" in text


def test_report_python_writes_no_html() -> None:
    """The structure is in the templates: the section modules compute data (figures.py only edits the SVG)."""
    import ast

    import clinagent_lab.report as report

    folder = Path(report.__file__).parent
    tags = re.compile(r"<(p|table|tr|td|th|span|div|h\d|ul|li|code|pre|figure|section|blockquote)[\s>]")
    offenders = []
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        offenders += [f"{path.name}:{node.lineno}" for node in ast.walk(tree)
                      if isinstance(node, ast.Constant) and isinstance(node.value, str)
                      and id(node) not in docstrings and tags.search(node.value)]
    assert offenders == []
    sections = {p.stem.replace(".html", "") for p in (folder / "templates" / "sections").glob("*.html.j2")}
    assert sections == set(section_ids())  # one template per section


# ------------------------------------------------------------------------------------------------- intervals


def _reference_inputs(folder: Path):
    pred = pd.read_csv(folder / "test_predictions.csv", dtype={"image_id": str})
    splits = pd.read_csv(folder / "splits.csv", dtype=str).set_index("image_id")
    groups = pred["image_id"].map(splits["group_id"]).to_numpy()
    raw = json.loads((folder / "session.json").read_text())
    recipe = raw["iterations"][1]["recipe"]
    return pred, groups, raw, recipe


def test_bootstrap_intervals_equal_bootstrap_ci_resampling_patients(binary: Path, binary_report) -> None:
    soup, _, _ = binary_report
    pred, groups, raw, recipe = _reference_inputs(binary)
    assert len(set(groups)) == len(pred) // 2  # two test images per patient
    y = pred["label"].to_numpy()
    p = pred[["prob_normal", "prob_pneumothorax"]].to_numpy()
    threshold = raw["final_test"]["metrics"]["threshold"]
    kw = dict(groups=groups, n_resamples=recipe["evaluation"]["bootstrap"], seed=recipe["seed"])

    def sk_auroc(yy, pp):
        return roc_auc_score(yy, pp[:, 1]) if 0 < yy.sum() < len(yy) else None

    def sensitivity(yy, pp):  # hand-computed at the validation threshold
        pos = yy == 1
        return float(np.mean(pp[pos, 1] >= threshold)) if pos.any() else None

    for key, fn in (("auroc", sk_auroc), ("sensitivity", sensitivity)):
        _, low, high = bootstrap_ci(fn, y, p, **kw)
        assert _metric_row(soup, key) == (round(low, 3), round(high, 3)), key
    # the rows-only bootstrap gives another interval: the report really resampled patients
    _, low_rows, high_rows = bootstrap_ci(sk_auroc, y, p, n_resamples=kw["n_resamples"], seed=kw["seed"])
    assert (round(low_rows, 3), round(high_rows, 3)) != _metric_row(soup, "auroc")
    assert "splits.csv" in soup.select_one("#test").get_text()


def test_groups_taken_from_predictions_column_first(tmp_path: Path) -> None:
    folder = make_session(tmp_path)
    pred = pd.read_csv(folder / "test_predictions.csv", dtype={"image_id": str})
    pred["group_id"] = "one-patient-each-" + pred["image_id"]
    pred.to_csv(folder / "test_predictions.csv", index=False)
    inputs = load_inputs(folder)
    assert "test predictions" in inputs.groups_source
    assert list(inputs.groups) == list(pred["group_id"])


# ------------------------------------------------------------------------------------------------- validation only


def test_session_without_final_test_says_validation_only(tmp_path: Path) -> None:
    folder = make_session(tmp_path, final=False)
    soup = BeautifulSoup(write_report(folder).read_text(), "html.parser")
    test = soup.select_one("#test").get_text()
    assert "Validation only" in test and "has not been evaluated" in test
    assert soup.select_one("#test-metrics") is None and soup.select_one("#test svg") is None
    assert "validation-only" in soup.select_one("header .status")["class"]
    assert "not available" in soup.select_one("#model-card").get_text()
    _check_numbers(soup, json.loads((folder / "session.json").read_text()))


# ------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("damage, expected", [
    (lambda f: (f / "session.json").unlink(), "session.json"),
    (lambda f: (f / "splits.csv").unlink(), "splits.csv"),
    (lambda f: (f / "test_predictions.csv").unlink(), "test predictions"),
    (lambda f: (f / "test_predictions.csv").write_text(
        "\n".join((f / "test_predictions.csv").read_text().splitlines()[:10])), "rows"),
    (lambda f: _edit(f, lambda raw: raw.update(schema_version=0)), "schema version"),
    (lambda f: _edit(f, lambda raw: raw.update(fingerprint=None)), "fingerprint"),
    (lambda f: _edit(f, lambda raw: raw.pop("spec")), "spec"),
])
def test_incomplete_folder_raises_session_error_naming_the_piece(tmp_path: Path, damage, expected) -> None:
    folder = make_session(tmp_path)
    damage(folder)
    with pytest.raises(SessionError, match=re.escape(expected)):
        write_report(folder)
    assert not (folder / "report.html").exists()


def _edit(folder: Path, change) -> None:
    raw = json.loads((folder / "session.json").read_text())
    change(raw)
    (folder / "session.json").write_text(json.dumps(raw))


def test_atomic_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clinagent_lab.report import sections

    folder = make_session(tmp_path)
    out = folder / "report.html"
    out.write_text("previous report")

    def broken(ctx):
        raise RuntimeError("figure failed")

    patched = tuple(s if s.id != "model-card" else sections.Section(s.id, s.title, broken)
                    for s in sections.SECTIONS)
    monkeypatch.setattr("clinagent_lab.report.build.SECTIONS", patched)
    with pytest.raises(RuntimeError, match="figure failed"):
        write_report(folder)
    assert out.read_text() == "previous report"
    monkeypatch.undo()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("clinagent_lab.fileio.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(folder)
    assert out.read_text() == "previous report"
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # no temp file left


def test_custom_output_path_and_moved_folder(tmp_path: Path) -> None:
    folder = make_session(tmp_path)
    moved = tmp_path / "elsewhere"
    shutil.move(folder, moved)  # predictions path in session.json now points to the old place
    out = write_report(moved / "session.json", tmp_path / "out" / "my.html")
    assert out == tmp_path / "out" / "my.html" and "Test evaluation" in out.read_text()


# ------------------------------------------------------------------------------------------------- real session


@pytest.mark.slow
def test_report_of_a_real_session(e2e_session, tmp_path: Path) -> None:
    engine = e2e_session[0]
    path = engine.export_report(tmp_path / "report.html")
    soup = BeautifulSoup(path.read_text(), "html.parser")
    assert [s["id"] for s in soup.find_all("section")][:7] == BASE_SECTIONS[:4] + ["saliency"] + BASE_SECTIONS[4:]
    raw = json.loads((Path(engine.session.out_dir) / "session.json").read_text())
    paths = _check_numbers(soup, raw)
    assert ["final_test", "metrics", "auroc"] in paths
    assert "patients" in soup.select_one("#test").get_text()  # patient ids recovered from the dataset
    repro = soup.select_one("#reproducibility").get_text()
    assert "papermill" in repro
    folder = Path(engine.session.best().output_dir)  # the rerun passes the injected values and the plan back
    assert f"-f {folder / 'parameters.yaml'} -f {folder / 'replay.yaml'}" in repro
    info = json.loads((Path(engine.session.best().output_dir) / "run_info.json").read_text())
    assert f"{info['epochs_run']} trained, {info['epoch_plan'][0]}" in repro  # what ran, against the plan


def test_reproducibility_prints_the_papermill_rerun_of_the_best_iteration(tmp_path: Path) -> None:
    from clinagent_lab.records import Session
    from clinagent_lab.report.context import ReportContext
    from clinagent_lab.report.reproducibility import commands
    from clinagent_lab.runfolder import RunFolder

    folder = make_session(tmp_path)
    best = Session.load(folder).best()
    run = RunFolder(Path(best.notebook).parent)

    def rerun_command() -> str:
        ctx = ReportContext(inputs=load_inputs(folder))
        return next(cmd for purpose, cmd in commands(ctx) if cmd.startswith("papermill "))

    # recorded before injection: the values are in the notebook, the plan comes from run_info.json
    run.run_info.write_text(json.dumps({**json.loads(run.run_info.read_text()), "epoch_plan": [4]}))
    assert rerun_command() == f"papermill {best.notebook} out.ipynb -p max_epochs 4"
    run.write_parameters({"seed": best.recipe.seed, "output_dir": "."})
    run.write_parameters({"max_epochs": [3, 2]}, replay=True)
    assert rerun_command() == f"papermill {best.notebook} out.ipynb -f {run.parameters} -f {run.replay_parameters}"


@pytest.mark.parametrize("info, expected", [
    ({"epochs_run": 15, "epoch_plan": [16, 15], "max_epochs": 15},
     "15 trained, 16 then 15 planned (revised after the second epoch)"),
    ({"epochs_run": 9, "epoch_plan": [11], "max_epochs": 11, "stopped_by_time": True},
     "9 trained, 11 planned; stopped by the time guard before the end of its schedule"),
    ({"epochs_run": 3, "max_epochs": 3}, "3 trained, 3 planned"),  # recorded before plans had a history
    ({}, "—"),
])
def test_reproducibility_states_the_epochs_against_the_plan(info, expected) -> None:
    from clinagent_lab.report.reproducibility import _epochs_text

    assert _epochs_text(info) == expected
