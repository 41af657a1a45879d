"""From a clinician's sentence to a :class:`~clinagent_lab.spec.TaskSpec`, and from there to the data.

- :func:`assess_request`: is the text empty, not about imaging, vague, or a usable imaging request?
- :func:`parse_offline`: the rule-based parser (no model, no network, deterministic).
- :func:`ground_spec`: map the spec's clinical names onto the dataset's classes and columns.

The synonym tables live in :mod:`.vocabulary`; extending the parser usually means adding a line there.
"""

from ..errors import IntentError
from .grounding import find_column, ground_spec, match_class, positive_class
from .offline import RequestKind, assess_request, parse_offline

__all__ = [
    "IntentError",
    "RequestKind",
    "assess_request",
    "find_column",
    "ground_spec",
    "match_class",
    "parse_offline",
    "positive_class",
]
