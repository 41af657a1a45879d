"""Jupyter server extension: REST handlers and progress events for the clinagent sidebar.

Importing this package is cheap (no torch, no litellm, not even jupyter_server): the application class is
imported when the server asks for the extension points.
"""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import ClinagentApp  # deferred: pulls in jupyter_server, slow to import

    return [{"module": "clinagent_lab.server", "app": ClinagentApp}]
