"""clinagent-lab: build a medical-imaging model by saying what you want.

Importing the package is light: torch, Lightning and litellm load only when a function needs them.
Nothing it imports calls the network: albumentations' update check (a request to PyPI on every import, in
every kernel; on an air-gapped hospital machine a warning or a wait) is switched off for this process and the
kernels it starts, unless the user set ``NO_ALBUMENTATIONS_UPDATE`` themselves.
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from .errors import ClinagentError
from .recipe import Recipe, RecipePatch
from .spec import TaskSpec

__version__ = "0.1.0"

__all__ = ["ClinagentError", "Recipe", "RecipePatch", "TaskSpec", "__version__"]
