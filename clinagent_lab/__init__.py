"""clinagent-lab: build a medical-imaging model by saying what you want.

Importing the package is light: torch, Lightning and litellm load only when a function needs them.
"""

from .errors import ClinagentError
from .recipe import Recipe, RecipePatch
from .spec import TaskSpec

__version__ = "0.1.0"

__all__ = ["ClinagentError", "Recipe", "RecipePatch", "TaskSpec", "__version__"]
