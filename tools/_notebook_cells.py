"""Cell builders shared by the template generators: every cell is tagged ``clinagent`` (plus its own tags)."""

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
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, str(TEMPLATES / name))
