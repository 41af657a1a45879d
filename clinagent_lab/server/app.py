"""``ClinagentApp``: the jupyter_server extension (traitlets configuration, handlers, start-up recovery)."""

from __future__ import annotations

from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Float, Integer, Unicode

from .handlers import handlers
from .manager import SessionManager

__all__ = ["ClinagentApp"]


class ClinagentApp(ExtensionApp):
    """Serves ``/clinagent/api/*`` for the clinagent sidebar.

    Configure in ``jupyter_server_config.py`` (``c.ClinagentApp.model = "openai/gpt-4o-mini"``) or on the
    command line (``jupyter lab --ClinagentApp.max_iterations=3``).
    """

    name = "clinagent_lab"
    load_other_extensions = True

    sessions_dir = Unicode("", config=True,
                           help="Folder holding one sub-folder per session. "
                                "Empty: <server root>/.clinagent/sessions.")
    model = Unicode("offline", config=True,
                    help="Planner: 'offline' (deterministic rules) or a litellm model string.")
    max_iterations = Integer(None, allow_none=True, config=True,
                             help="Default iteration budget for new sessions (None: the TaskSpec decides).")
    iteration_minutes = Float(None, allow_none=True, config=True,
                              help="Default time budget of one iteration in minutes "
                                   "(None: the TaskSpec decides).")
    auto_continue = Bool(False, config=True,
                         help="Run the proposed next iteration without waiting for the clinician's approval.")
    recipe_overrides = Dict({}, config=True,
                            help="Recipe fields fixed for every new session's baseline, as dotted names "
                                 "(e.g. {'data.image_size': 224}); validated when the recipe is built.")

    execution = Dict({}, config=True,
                     help="Where new sessions run their notebooks, as execution.ExecutionConfig: e.g. "
                          "{'backend': 'slurm', 'parallel': 2, 'slurm': {'partition': 'gpu', 'gpus_per_job': 1}} "
                          "(empty: CLINAGENT_BACKEND, the config file, else local). See docs/cluster.md.")

    def _sessions_path(self) -> Path:
        root = Path(self.serverapp.root_dir)
        if not self.sessions_dir:
            return root / ".clinagent" / "sessions"
        path = Path(self.sessions_dir).expanduser()
        return path if path.is_absolute() else root / path

    def initialize_settings(self) -> None:
        manager = SessionManager(self._sessions_path(), self.serverapp.root_dir, model=self.model,
                                 max_iterations=self.max_iterations, iteration_minutes=self.iteration_minutes,
                                 auto_continue=self.auto_continue, recipe_overrides=self.recipe_overrides,
                                 execution=self.execution)
        recovered = manager.recover()
        self.log.info("clinagent: %d session(s) in %s", len(recovered), manager.sessions_dir)
        self.settings["clinagent_manager"] = manager

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers())

    async def stop_extension(self) -> None:
        manager = self.settings.get("clinagent_manager")
        if manager is not None:
            await manager.shutdown()
