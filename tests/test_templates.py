"""Each packaged template notebook is exactly what its generator in ``tools/`` writes (they cannot drift)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "clinagent_lab" / "notebooks" / "templates"
GENERATORS = sorted((ROOT / "tools").glob("make_*_template.py"))


def test_every_template_has_a_generator():
    made = {g.name.removeprefix("make_").removesuffix("_template.py") + ".ipynb" for g in GENERATORS}
    assert made == {p.name for p in TEMPLATES.glob("*.ipynb")}


@pytest.mark.parametrize("generator", GENERATORS, ids=lambda p: p.stem)
def test_template_is_regenerated_byte_for_byte(generator, tmp_path):
    subprocess.run([sys.executable, str(generator), str(tmp_path)], check=True, cwd=generator.parent)
    (written,) = tmp_path.glob("*.ipynb")
    packaged = TEMPLATES / written.name
    assert written.read_text(encoding="utf-8") == packaged.read_text(encoding="utf-8"), (
        f"{packaged.relative_to(ROOT)} differs from what {generator.relative_to(ROOT)} writes: edit the "
        f"generator and run it, never the notebook by hand")


@pytest.mark.parametrize("template", sorted(p.name for p in (Path(__file__).resolve().parents[1] / "clinagent_lab"
                                                            / "notebooks" / "templates").glob("*.ipynb")))
def test_papermill_reads_every_declared_parameter(template, caplog):
    """papermill's own reading of the parameters cell (``papermill --help-notebook``, and the check behind its
    'Passed unknown parameter' warning) must find every name the notebook declares: a comment holding a second
    '=' makes papermill skip the line and warn about a parameter that exists."""
    import logging

    from papermill.inspection import _infer_parameters

    from clinagent_lab.notebooks.render import declared_parameters, load_template

    nb = load_template(template)
    with caplog.at_level(logging.WARNING, logger="papermill"):
        found = [p.name for p in _infer_parameters(nb)]
    assert found == declared_parameters(nb)
    assert not [r for r in caplog.records if "Unable to parse" in r.getMessage()]
