"""The ``clinagent`` command line: clear one-line errors with exit code 2, ``parse --json``, ``synth``."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clinagent_lab.cli import main
from clinagent_lab.data.formats import FORMATS, _ensure_builtin_formats, detect_format, load_dataset
from clinagent_lab.data.synth import SYNTH_KINDS, _ensure_builtin
from clinagent_lab.errors import ClinagentError, IntentError
from clinagent_lab.spec import TaskSpec

_ensure_builtin()
_ensure_builtin_formats()

SEED_DERM = ("classify dermoscopic lesions into the ISIC categories, melanoma matters most, "
             "sensitivity at 80% specificity")
SEED_PTX = "pneumothorax on chest X-rays, don't let the model cheat by looking at chest drains"
SEED_WRIST = "detect wrist fractures, only 5% of images have boxes"

#: tiny options per synthetic kind, and the format each one is written in
TINY = {"chest_drain": ["n=40", "image_size=16"], "dermoscopy": ["n=40", "image_size=16"],
        "isic2019": ["n=60", "image_size=16"], "siim_acr": ["n=30", "image_size=16"],
        "grazpedwri": ["n=30", "image_size=32"], "drain_overlay": []}
FORMAT_OF = {"chest_drain": "csv_manifest", "dermoscopy": "csv_manifest", "drain_overlay": "csv_manifest",
             "isic2019": "isic2019", "siim_acr": "siim_acr", "grazpedwri": "grazpedwri"}


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("clinagent: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_manifest(folder: Path, labels: list[str], label_column: str = "label") -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, label in enumerate(labels):
        Image.fromarray(np.full((8, 8), 20 * (i % 12), np.uint8)).save(folder / "images" / f"{i}.png")
        rows.append({"image": f"images/{i}.png", label_column: label, "patient_id": f"p{i}"})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


def write_medmnist(path: Path) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("val", 6), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 16, 16), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).astype(np.uint8)[:, None]
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def synthesised(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, Path]]:
    """Every registered synthetic kind written through ``clinagent synth``: kind -> (exit code, stdout, out)."""
    root = tmp_path_factory.mktemp("synth")
    base = write_medmnist(root / "pneumoniamnist.npz")
    results = {}
    for kind in SYNTH_KINDS.names():
        options = TINY.get(kind, ["n=40"]) + ([f"base={base}"] if kind == "drain_overlay" else [])
        argv = ["synth", kind, "--out", str(root / kind), "--seed", "1"]
        for option in options:
            argv += ["--option", option]
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            code = main(argv)
        results[kind] = (code, stdout.getvalue(), root / kind)
    return results


# ------------------------------------------------------------------------------------------ clear errors


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_request(text, capsys):
    code, out, err = run(["parse", text], capsys)
    assert_one_line_error(code, err, "the request is empty", "What to do:")
    assert out == ""


def test_non_imaging_request(capsys):
    code, _, err = run(["parse", "what is the weather in Vienna tomorrow"], capsys)
    assert_one_line_error(code, err, "does not describe a medical-imaging task", "Vienna")


def test_missing_data_path(tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    code, _, err = run(["parse", SEED_PTX, "--data", str(missing)], capsys)
    assert_one_line_error(code, err, "data path does not exist", str(missing))
    code, _, err = run(["run", "--intent", SEED_PTX, "--data", str(missing), "--out", str(tmp_path / "o")],
                       capsys)
    assert_one_line_error(code, err, "data path does not exist")
    assert not (tmp_path / "o").exists()


def test_unknown_format_lists_known_formats(tmp_path, capsys):
    data = write_manifest(tmp_path / "d", ["normal", "pneumothorax"] * 6)
    code, _, err = run(["parse", SEED_PTX, "--data", str(data), "--format", "dicom_zip"], capsys)
    assert_one_line_error(code, err, "unknown dataset format 'dicom_zip'", *FORMATS.names())


def test_unrecognised_layout_lists_known_formats(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("not images")
    code, _, err = run(["parse", SEED_PTX, "--data", str(tmp_path / "d")], capsys)
    assert_one_line_error(code, err, "no known dataset format matches", *FORMATS.names())


def test_csv_without_label_column_names_the_columns_found(tmp_path, capsys):
    data = write_manifest(tmp_path / "d", ["normal", "pneumothorax"] * 6, label_column="finding")
    code, _, err = run(["parse", SEED_PTX, "--data", str(data)], capsys)
    assert_one_line_error(code, err, "no label column", "columns found: image, finding, patient_id",
                          "manifest.csv")


def test_single_class_data(tmp_path, capsys):
    data = write_manifest(tmp_path / "d", ["normal"] * 12)
    code, _, err = run(["parse", SEED_PTX, "--data", str(data)], capsys)
    assert_one_line_error(code, err, "only one class is present (normal)", "at least two")


def test_debug_raises_with_the_traceback(tmp_path):
    with pytest.raises(IntentError, match="the request is empty"):
        main(["--debug", "parse", ""])
    with pytest.raises(ClinagentError, match="data path does not exist"):
        main(["--debug", "parse", SEED_PTX, "--data", str(tmp_path / "missing")])


def test_console_script(tmp_path):
    """The installed ``clinagent`` entry point: exit 2 and one line; ``--debug`` prints the traceback."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    exe = Path(sys.executable).with_name("clinagent")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "clinagent_lab.cli"]
    plain = subprocess.run(command + ["parse", "   "], capture_output=True, text=True, env=env, timeout=120, check=False,
                           cwd=tmp_path)
    assert plain.returncode == 2
    assert plain.stderr.strip().startswith("clinagent: error: the request is empty")
    assert "Traceback" not in plain.stderr and plain.stdout == ""
    debug = subprocess.run(command + ["--debug", "parse", "   "], capture_output=True, text=True, env=env,
                           timeout=120, cwd=tmp_path, check=False)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr and "IntentError" in debug.stderr


# -------------------------------------------------------------------------------------------- parse --json


@pytest.mark.parametrize("text, check", [
    (SEED_DERM, lambda s: (s.task_type == "multiclass_classification" and s.modality == "dermoscopy"
                           and s.target_classes == ["melanoma"]
                           and s.primary_metric.name == "sensitivity_at_specificity"
                           and s.primary_metric.params["specificity"] == 0.8)),
    (SEED_PTX, lambda s: (s.task_type == "binary_classification" and s.modality == "chest_xray"
                          and [(c.name, c.action) for c in s.confounders] == [("chest_drain", "mitigate")])),
    (SEED_WRIST, lambda s: (s.task_type == "detection" and s.modality == "musculoskeletal_xray"
                            and s.supervision.kind == "mixed" and s.supervision.box_fraction == 0.05
                            and s.primary_metric.name == "map50" and s.output_format == "boxes")),
])
def test_parse_json_prints_a_valid_task_spec(text, check, capsys):
    code, out, err = run(["parse", text, "--json"], capsys)
    assert code == 0 and err == ""
    spec = TaskSpec.model_validate_json(out)  # the whole of stdout is the spec
    assert spec.request == text and spec.parsed_by == "offline"
    assert spec.classes is None  # not grounded without data
    assert check(spec), spec


def test_parse_text_summary(capsys):
    code, out, _ = run(["parse", SEED_PTX], capsys)
    assert code == 0
    assert "task:        binary_classification (chest_xray)" in out
    assert "('chest_drain', None, 'mitigate')" in out


def test_parse_with_data_grounds_the_classes(synthesised, capsys):
    code, out, _ = run(["parse", SEED_DERM, "--json", "--data", str(synthesised["isic2019"][2])], capsys)
    derm = TaskSpec.model_validate_json(out)
    assert code == 0
    assert derm.classes == ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]
    assert derm.target_classes == ["MEL"] and derm.primary_metric.params["class"] == "MEL"

    code, out, _ = run(["parse", SEED_PTX, "--json", "--data", str(synthesised["chest_drain"][2])], capsys)
    ptx = TaskSpec.model_validate_json(out)
    assert ptx.classes == ["normal", "pneumothorax"] and ptx.target_classes == ["pneumothorax"]
    drain = ptx.confounder("chest_drain")
    assert drain.column == "chest_drain" and drain.action == "mitigate"  # the column is found in the data

    data = synthesised["grazpedwri"][2]
    code, out, _ = run(["parse", SEED_WRIST, "--json", "--data", str(data)], capsys)
    wrist = TaskSpec.model_validate_json(out)
    assert wrist.classes == ["no_fracture", "fracture"] and wrist.target_classes == ["fracture"]
    from clinagent_lab.agent.engine import prepare_data

    measured = prepare_data(data)[1].box_fraction
    assert wrist.supervision.box_fraction == pytest.approx(measured)
    if abs(measured - 0.05) > 0.01:
        assert any("You said 5%" in a for a in wrist.assumptions)


# ----------------------------------------------------------------------------------------------- synth


@pytest.mark.parametrize("kind", SYNTH_KINDS.names())
def test_synth_writes_each_registered_kind(kind, synthesised):
    code, stdout, out = synthesised[kind]
    assert code == 0
    assert Path(stdout.strip()) == out and out.exists()
    fmt = detect_format(out)
    if kind in FORMAT_OF:
        assert fmt == FORMAT_OF[kind]
    ds = load_dataset(out)
    assert len(ds) > 0 and len(ds.classes) >= 2
    assert set(np.unique(ds.table["label"])) >= {0, 1}


def test_synth_is_seeded(tmp_path, synthesised, capsys):
    run(["synth", "chest_drain", "--out", str(tmp_path / "again"), "--seed", "1", "--option", "n=40",
         "--option", "image_size=16"], capsys)
    first = pd.read_csv(synthesised["chest_drain"][2] / "manifest.csv")
    again = pd.read_csv(tmp_path / "again" / "manifest.csv")
    pd.testing.assert_frame_equal(first, again)


@pytest.mark.parametrize("argv, fragments", [
    (["synth", "ct_scan"], ["unknown synthetic dataset kind 'ct_scan'", "chest_drain", "grazpedwri"]),
    (["synth", "chest_drain", "--option", "n"], ["option 'n' is not KEY=VALUE"]),
    (["synth", "chest_drain", "--option", "colour=red"], ["colour", "image_size", "correlation"]),
    (["synth", "drain_overlay"], ["needs option(s) base"]),
    (["synth", "isic2019", "--option", "n=10"], ["cannot synthesise 'isic2019'", "n=10"]),
])
def test_synth_errors(argv, fragments, tmp_path, capsys):
    code, _, err = run(argv + ["--out", str(tmp_path / "o")], capsys)
    assert_one_line_error(code, err, *fragments)


# ----------------------------------------------------------------------------------- rerun (no execution)


def test_rerun_refuses_before_running(tmp_path, capsys):
    from clinagent_lab.notebooks.render import declared_parameters, load_template, render_iteration

    code, _, err = run(["rerun", str(tmp_path / "missing.ipynb"), "--seed", "1"], capsys)
    assert_one_line_error(code, err, "notebook not found", "missing.ipynb")
    nb = render_iteration("classification.ipynb", tmp_path / "iteration.ipynb")
    code, _, err = run(["rerun", str(nb), "-p", "lr", "0.1", "-p", "seed", "2"], capsys)
    assert_one_line_error(code, err, "parameter(s) lr are not declared by iteration.ipynb",
                          ", ".join(declared_parameters(load_template("classification.ipynb"))))
    assert not (tmp_path / "reruns").exists()
