"""``ClinagentApp``: the jupyter_server extension (traitlets configuration, handlers, start-up recovery)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Enum, Float, Integer, Unicode

from ..errors import ClinagentError
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
    parallel = Integer(None, allow_none=True, min=1, max=16, config=True,
                       help="Candidates per round for new sessions (--parallel K); overrides execution['parallel']. "
                            "None: the execution configuration decides (1).")
    devices = Integer(None, allow_none=True, min=1, config=True,
                      help="GPUs (or CPU processes) each iteration of a new session trains on (--devices); checked "
                           "against this machine when the server starts. None: one.")
    accelerator = Enum(["auto", "cpu", "gpu"], "auto", config=True,
                       help="Where new sessions train (--accelerator): 'auto' (the GPU when there is one), 'cpu' "
                            "or 'gpu'; checked against this machine when the server starts.")

    def _sessions_path(self) -> Path:
        root = Path(self.serverapp.root_dir)
        if not self.sessions_dir:
            return root / ".clinagent" / "sessions"
        path = Path(self.sessions_dir).expanduser()
        return path if path.is_absolute() else root / path

    def hardware_overrides(self) -> dict[str, Any]:
        """``training.accelerator`` / ``training.devices`` for new sessions, checked against this machine (only
        when set: the check imports torch).

        Raises:
            ClinagentError: more devices than the machine has, or ``gpu`` without a GPU (what / where / fix).
        """
        if self.devices is None and self.accelerator == "auto":
            return {}
        from ..plan.hardware import detect_hardware  # imports torch: only when the traitlets are set

        try:
            hw = detect_hardware(self.accelerator, self.devices or 1)
        except ClinagentError as exc:
            where = f"ClinagentApp.devices={self.devices}, ClinagentApp.accelerator='{self.accelerator}'"
            raise type(exc)(exc.what, where=where, fix=exc.fix.replace("--", "ClinagentApp.") if exc.fix
                            else None) from None
        return {"training.accelerator": hw.accelerator, "training.devices": hw.devices}

    def initialize_settings(self) -> None:
        try:
            hardware = self.hardware_overrides()
        except ClinagentError as exc:
            self.log.error("clinagent: %s", exc.message)
            raise
        execution = {**self.execution, **({"parallel": self.parallel} if self.parallel else {})}
        manager = SessionManager(self._sessions_path(), self.serverapp.root_dir, model=self.model,
                                 max_iterations=self.max_iterations, iteration_minutes=self.iteration_minutes,
                                 auto_continue=self.auto_continue,
                                 recipe_overrides={**self.recipe_overrides, **hardware},
                                 execution=execution, event_logger=self.serverapp.event_logger)
        recovered = manager.recover()
        self.log.info("clinagent: %d session(s) in %s", len(recovered), manager.sessions_dir)
        if manager.reattached:
            self.log.info("clinagent: reattaching to running jobs of %s", ", ".join(manager.reattached))
        self.settings["clinagent_manager"] = manager

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Once the event loop runs: collect the jobs that outlived the last server (no click needed)."""
        manager = self.settings.get("clinagent_manager")
        if manager is not None and manager.reattached:
            self._collecting = asyncio.create_task(manager.collect_reattached())

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers())

    async def stop_extension(self) -> None:
        manager = self.settings.get("clinagent_manager")
        if manager is not None:
            await manager.shutdown()
