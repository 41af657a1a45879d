"""What an iteration notebook calls: the readable cells stay short and the logic stays tested library code.

The template notebooks (``templates/*.ipynb``) create one :class:`IterationRun` with :func:`prepare_run` and
call its methods in order: load data with the frozen split, collect custom-code hooks, build the Lightning
``Trainer`` arguments, save outputs (``metrics.json``, predictions, ``model.ckpt``) and show figures.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.base import LoadedDataset
from ..data.formats import load_dataset
from ..data.splits import apply_split_table, without_split
from ..errors import DataValidationError, RecipeError
from ..events import headline
from ..fileio import atomic_write_text
from ..recipe import Recipe
from ..runfolder import FitState, RunFolder, RunInfo
from ..spec import TaskSpec
from ..tasks import TaskBackend, get_backend
from .ddp import RankThreads, check_devices, ddp_strategy, process_group_backend, threads_per_rank
from .events import DEADLINE_ENV
from .progress import EpochPlanner, FitRecord, ProgressCallback, TimeBudget, write_event
from .saliency import save_iteration_saliency

__all__ = ["IterationRun", "Hooks", "prepare_run", "without_split", "HOOK_FUNCTIONS"]

#: hook cell name -> (function it must define, where it goes: datamodule or module keyword)
HOOK_FUNCTIONS = {
    "model": ("build_model", "model", "custom_model"),
    "loss": ("custom_loss", "model", "custom_loss"),
    "augment": ("extra_transforms", "data", "extra_transforms"),
    "sampler": ("sample_weights", "data", "sample_weights"),
}


@dataclass
class Hooks:
    data: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)


@dataclass
class IterationRun:
    recipe: Recipe
    spec: TaskSpec
    output_dir: Path
    events_path: str
    backend: TaskBackend
    fixed_epochs: list[int] | None = None
    """``max_epochs`` when it came in as a parameter (a rerun), as a plan to replay without measuring: ``[n]``
    for exactly n epochs, or the original run's plan history ``[after the first steps, after the second
    epoch]``."""

    @property
    def epochs_fixed(self) -> bool:
        return self.fixed_epochs is not None

    # --- data -----------------------------------------------------------------------------------------
    def load_data(self, data_path: str, data_format: str = "", splits_path: str = "",
                  include_test: bool = False) -> LoadedDataset:
        write_event(self.events_path, "data_started", data_path=str(data_path))
        dataset = load_dataset(data_path, data_format or None, **self.recipe.data.format_options)
        if splits_path:
            dataset = apply_split_table(dataset, pd.read_csv(splits_path, dtype={"image_id": str}))
        if dataset.table["split"].isna().any():
            raise DataValidationError("some rows have no split assigned", where=splits_path or data_path,
                                      fix="run the iteration through the engine, which freezes the split first")
        return dataset if include_test else without_split(dataset, "test")

    def data_summary(self, dataset: LoadedDataset) -> None:
        names = {i: c for i, c in enumerate(dataset.classes)}
        table = pd.crosstab(dataset.table["label"].map(names), dataset.table["split"], margins=True)
        _display(table)
        for warning in dataset.warnings:
            print("warning:", warning)

    # --- hooks ----------------------------------------------------------------------------------------
    def collect_hooks(self, namespace: dict[str, Any]) -> Hooks:
        hooks = Hooks()
        for hook, (function, target, keyword) in HOOK_FUNCTIONS.items():
            if hook in self.recipe.custom_code and callable(namespace.get(function)):
                getattr(hooks, target)[keyword] = namespace[function]
                print(f"custom {hook} hook in use: {function}()")
        return hooks

    # --- training -------------------------------------------------------------------------------------
    def trainer_kwargs(self, module: Any = None, datamodule: Any = None) -> dict[str, Any]:
        """Lightning ``Trainer`` arguments: callbacks for progress, the time budget, the epoch plan, checkpoints.

        The epoch count is fitted to the time this kernel has left from the speed of the run's own first
        training steps and checked again after the second epoch
        (:class:`~clinagent_lab.notebooks.progress.EpochPlanner`), unless ``max_epochs`` came in as a parameter
        (a rerun: exactly that many, or the original's plan history). The plan is recorded in ``run_info.json``
        so a rerun replays it. The checkpoint kept is the best epoch by :meth:`monitor` for ``module``.
        ``training.devices > 1`` trains in that many forked processes (:mod:`.ddp`); ``datamodule`` is then set
        up here, once, so that the ranks share its images instead of each reading them.
        """
        # the training stack takes seconds to import
        from lightning.pytorch.callbacks import EarlyStopping

        from ..models.timing import EpochTimes  # imports Lightning, like the line above
        from .checkpoint import BestCheckpoint  # imports Lightning, like the line above

        t = self.recipe.training
        monitor = self.monitor(module)
        max_time = training_time_left(t.max_time_s)
        self.time_budget = TimeBudget(max_time)
        times = EpochTimes(lambda **note: write_event(self.events_path, "log", **note))  # where the time went
        callbacks: list[Any] = [times, ProgressCallback(self.events_path), self.time_budget]
        self.epoch_planner = None
        if not self.backend.plans_epochs:  # the recipe's (or the fixed) epochs are trained
            epochs = self.fixed_epochs[-1] if self.fixed_epochs else t.max_epochs
        else:  # the planner sets the epochs once it has measured the speed; until then the recipe's run
            epochs = max([t.max_epochs, *(self.fixed_epochs or [])])
            self.epoch_planner = EpochPlanner(self.events_path, None if self.epochs_fixed else max_time,
                                              fixed_epochs=self.fixed_epochs,
                                              build_scheduler=self._scheduler_builder())
            callbacks.append(self.epoch_planner)
        callbacks.append(BestCheckpoint(dirpath=str(self.output_dir), filename="model", monitor=monitor,
                                        enable_version_counter=False))  # a tie goes to the lower val_loss
        if t.early_stopping_patience:
            callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=t.early_stopping_patience))
        check_devices(self.backend, self.recipe)
        _use_tensor_cores(t.accelerator)
        kwargs: dict[str, Any] = dict(
            max_epochs=epochs, accelerator=t.accelerator, devices=t.devices, precision=t.precision,
            deterministic=t.lightning_deterministic(), callbacks=callbacks, logger=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=str(self.output_dir), num_sanity_val_steps=0,
        )
        strategy = "single_device"
        if t.devices > 1:  # forked processes: the kernel cannot re-execute itself as the "ddp" launcher would
            kwargs["strategy"], strategy = ddp_strategy(self.recipe, module,
                                                        custom_model="model" in self.recipe.custom_code)
            callbacks.append(RankThreads(t.devices))
            if datamodule is not None and hasattr(datamodule, "setup"):
                datamodule.setup("fit")  # before the fork: Lightning's setup in each rank then finds it done
            print(f"training in {t.devices} processes ({strategy}, {process_group_backend(self.recipe)}, "
                  f"{threads_per_rank(t.devices)} thread(s) each, {self.recipe.data.batch_size} images per step "
                  f"in each)")
        run = RunFolder(Path(self.output_dir))
        run.fit_state.unlink(missing_ok=True)  # written again by this run's fit
        callbacks.append(FitRecord(run, self.time_budget, self.epoch_planner, strategy=strategy))
        if max_time is not None:  # hard backstop; TimeBudget normally stops first, between epochs
            kwargs["max_time"] = {"seconds": int(max(1, max_time * 1.25 + 5))}
        for name in ("limit_train_batches", "limit_val_batches", "val_check_interval"):
            if getattr(t, name) is not None:
                kwargs[name] = getattr(t, name)
        return kwargs

    def monitor(self, module: Any = None) -> str:
        """The validation metric that picks this iteration's checkpoint (and stops it early): the one that
        decides keep/discard between iterations when that is a confounder-group metric the module logs (a
        shortcut inflates plain validation AUROC, so the epoch relying on it most would be kept), else the
        task's monitor."""
        candidates = self.backend.monitors(self.recipe)
        return candidates[0] if int(getattr(module, "n_groups", 0) or 0) >= 2 else candidates[-1]

    def _scheduler_builder(self) -> Any:
        """``(optimizer, total_steps) -> scheduler``: the recipe's per-step schedule over the planned steps."""
        if self.recipe.optim.schedule == "none":
            return None
        # deferred: pulls in lightning, slow to import
        from ..models.classifier import build_scheduler

        recipe = self.recipe
        return lambda optimizer, total_steps: build_scheduler(optimizer, recipe, total_steps)

    def fit_state(self) -> FitState | None:
        """How this run's training loop ended (written by rank 0 when several processes trained), or None."""
        return RunFolder(Path(self.output_dir)).read_fit_state()

    @property
    def epoch_plan(self) -> list[int]:
        """The plan history of this run (see :attr:`EpochPlanner.plan`), else ``[epochs_planned]``."""
        state = self.fit_state()
        if state is not None and state.epoch_plan:
            return list(state.epoch_plan)
        planner = getattr(self, "epoch_planner", None)
        if planner is not None and planner.plan:
            return list(planner.plan)
        return [self.epochs_planned]

    @property
    def epochs_planned(self) -> int:
        """The epochs this run planned: the planner's count, else the fixed or the recipe's."""
        state = self.fit_state()
        if state is not None and state.max_epochs is not None:
            return state.max_epochs
        planner = getattr(self, "epoch_planner", None)
        if planner is not None and planner.planned_epochs is not None:
            return planner.planned_epochs
        return self.fixed_epochs[-1] if self.fixed_epochs else self.recipe.training.max_epochs

    def best_module(self, module: Any, trainer: Any) -> Any:
        """Load the best weights of this iteration (by the monitored validation metric) into ``module``.

        Weights are loaded into the module that trained, so custom-code models keep their architecture.
        """
        state = self.fit_state()
        if state is not None and state.world_size > 1:
            print(f"trained in {state.world_size} processes ({state.strategy}): {state.epochs_run} epoch(s), "
                  f"{state.global_step} steps each")
        callback = getattr(trainer, "checkpoint_callback", None)
        best = getattr(callback, "best_model_path", "") if callback else ""
        if best and Path(best).exists():
            _load_weights(module, best)
        else:
            trainer.save_checkpoint(str(Path(self.output_dir) / "model.ckpt"))
        return module

    def load_checkpoint(self, path: str, hooks: Hooks) -> Any:
        """Rebuild the iteration's module (with its custom model hook, if any) and load ``path`` into it."""
        return self.backend.load_checkpoint(path, self.recipe, hooks.model).eval()

    def save_test_outputs(self, predictions: Any, metrics: dict[str, Any], datamodule: Any) -> None:

        run = RunFolder(Path(self.output_dir))
        path = run.test_predictions(self.backend)
        if isinstance(predictions, pd.DataFrame):
            frame = predictions.copy()
            frame.insert(2, "label_name", [self.recipe.classes[int(i)] for i in frame["label"]])
            columns = ["image_id", "label", "label_name"] + [c for c in frame.columns if c.startswith("prob_")] \
                + ["group_id"]
            atomic_write_text(path, frame[columns].to_csv(index=False))
        else:
            self.backend.save_predictions(predictions, path)
        run.write_metrics(_jsonable(metrics), test=True)
        # deferred: pulls in scipy, slow to import
        from ..evaluation.evaluate import evaluator_hash

        run.write_run_info(RunInfo(n_samples=len(predictions), test_reads=int(getattr(datamodule, "test_reads", 1)),
                                   evaluator_hash=evaluator_hash(), versions=package_versions()))
        write_event(self.events_path, "evaluated", metrics=headline(metrics))

    # --- outputs --------------------------------------------------------------------------------------
    def save_outputs(self, trainer: Any, predictions: Any, metrics: dict[str, Any]) -> None:
        # deferred: pulls in scipy, slow to import
        from ..evaluation.evaluate import evaluator_hash

        run = RunFolder(Path(self.output_dir))
        if not run.checkpoint.exists():
            trainer.save_checkpoint(str(run.checkpoint))
        self.backend.save_predictions(predictions, run.predictions(self.backend))
        run.write_metrics(_jsonable(metrics))
        # the loop's end state: from rank 0's file (the kernel's trainer did not run the loop under DDP)
        budget = getattr(self, "time_budget", None)
        state = run.read_fit_state() or FitState(
            epochs_run=trainer.current_epoch, global_step=trainer.global_step,
            stopped_by_time=bool(budget and budget.stopped), world_size=1, strategy="single_device")
        run.write_run_info(RunInfo(seed=self.recipe.seed, evaluator_hash=evaluator_hash(),
                                   epochs_run=state.epochs_run, max_epochs=self.epochs_planned,
                                   epoch_plan=self.epoch_plan, stopped_by_time=state.stopped_by_time,
                                   global_step=state.global_step, world_size=state.world_size,
                                   strategy=state.strategy, versions=package_versions()))
        write_event(self.events_path, "evaluated", metrics=headline(metrics))

    def show_metrics(self, metrics: dict[str, Any]) -> None:
        _display(pd.Series(headline(metrics), name="validation").to_frame())

    def show_figures(self, predictions: Any, metrics: dict[str, Any]) -> None:
        if self.backend.has_boxes:  # the detection template draws its own box figures
            return
        try:
            # deferred: pulls in matplotlib, slow to import
            from ..widgets.static import save_confounder_png, save_roc_png
        except ImportError:  # figures are a convenience, never a reason to fail the iteration
            return
        paths = [save_roc_png(predictions, self.recipe, self.output_dir / "roc.png")]
        for name in (metrics.get("confounders") or {}):
            paths.append(save_confounder_png(predictions, self.recipe, self.spec, name,
                                             self.output_dir / f"confounder_{name}.png", metrics=metrics))
        try:
            from IPython.display import Image, display  # only inside a kernel
        except ImportError:
            return
        for path in paths:
            if path and Path(path).exists():
                display(Image(filename=str(path)))


    def show_saliency(self, module: Any, datamodule: Any) -> None:
        """Grad-CAM maps on a stratified validation sample, saved and shown (:mod:`.saliency`)."""
        save_iteration_saliency(module, datamodule, self.output_dir)


def training_time_left(recipe_max_s: float | None) -> float | None:
    """Seconds training may run: the recipe's guard, capped by the executor's deadline (minus time to evaluate).

    The executor passes the iteration's deadline in ``CLINAGENT_DEADLINE``; a slow kernel start then eats into
    training, not into the evaluation that must follow it. Plain papermill reruns have no deadline.
    """

    deadline = os.environ.get(DEADLINE_ENV)
    if not deadline:
        return recipe_max_s
    remaining = float(deadline) - time.time()
    allowed = max(1.0, 0.75 * remaining - 10.0)  # the rest: predictions, evaluation (permutation tests), saving
    return allowed if recipe_max_s is None else min(recipe_max_s, allowed)


def _use_tensor_cores(accelerator: str) -> None:
    """On a GPU, float32 matrix products on TF32 tensor cores (``"high"``), as Lightning advises on such GPUs."""
    if accelerator == "cpu":
        return
    import torch  # the training stack takes seconds to import

    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")


def _load_weights(module: Any, path: str | Path) -> None:
    # deferred: pulls in torch, slow to import
    from ..models.checkpoints import load_weights

    load_weights(module, path)


def prepare_run(*, recipe: dict[str, Any], spec: dict[str, Any], seed: int, output_dir: str,
                events_path: str = "", max_epochs: int | list[int] | None = None,
                time_budget_s: float | None = None) -> IterationRun:
    """Validate the parameters, apply overrides, seed everything, and pick the task backend."""
    import lightning as L  # the training stack takes seconds to import

    data = json.loads(json.dumps(recipe))
    data["seed"] = int(seed)
    if time_budget_s is not None:
        data.setdefault("training", {})["max_time_s"] = float(time_budget_s)
    r = Recipe.model_validate(data)
    s = TaskSpec.model_validate(spec) if spec else TaskSpec(task_type=r.task_type)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(r.seed, workers=True, verbose=False)
    events = events_path or str(out / "events.jsonl")
    return IterationRun(recipe=r, spec=s, output_dir=out, events_path=events, backend=get_backend(r.task_type),
                        fixed_epochs=_epoch_parameter(max_epochs))


def _epoch_parameter(value: Any) -> list[int] | None:
    """``max_epochs`` as a notebook parameter (None, an epoch count, or a plan history such as ``[16, 12]``)
    as the plan to replay: None, ``[n]`` or ``[first, revised]``."""
    if value is None:
        return None
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        epochs = [int(v) for v in values]
    except (TypeError, ValueError):
        epochs = []
    if not epochs or len(epochs) > 2 or min(epochs) < 1 or any(float(v) != int(v) for v in values):
        raise RecipeError(f"max_epochs = {value!r} is not an epoch count", where="max_epochs",
                          fix="give a positive whole number of epochs (or the [first, revised] plan of "
                              "run_info.json's epoch_plan)")
    return epochs


def package_versions() -> dict[str, str]:

    out = {"python": platform.python_version()}
    for name in ("clinagent-lab", "torch", "torchvision", "lightning", "torchmetrics", "albumentations", "timm",
                 "numpy", "pandas", "papermill"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return None if np.isnan(f) else f
    if isinstance(value, np.integer):
        return int(value)
    return value


def _display(obj: Any) -> None:
    try:
        from IPython.display import display  # only inside a kernel

        display(obj)
    except ImportError:  # pragma: no cover - outside a kernel
        print(obj)
