"""Cell builders shared by the template generators: every cell is tagged ``clinagent`` (plus its own tags).

Each generator writes its template into ``clinagent_lab/notebooks/templates`` (or the folder given as its
first argument); cell ids are derived from the template name and position, so a generator always writes the
same bytes and ``tests/test_templates.py`` can compare them with the packaged file.
"""

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

TEMPLATES = Path(__file__).resolve().parents[1] / "clinagent_lab" / "notebooks" / "templates"


def code(src, *tags):
    cell = new_code_cell(src.strip("\n"))
    cell.metadata["tags"] = ["clinagent", *tags]
    return cell


def md(src, *tags):
    cell = new_markdown_cell(src.strip("\n"))
    cell.metadata["tags"] = ["clinagent", *tags]
    return cell


def write_template(cells, name):
    nb = new_notebook(cells=cells)
    for i, cell in enumerate(nb.cells):
        cell.id = f"{Path(name).stem.replace('_', '-')}-{i:02d}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else TEMPLATES
    nbformat.write(nb, str(out / name))
