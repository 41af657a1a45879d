"""Training an iteration in several processes (DDP) from inside its Jupyter kernel.

``training.devices = N > 1`` trains with Lightning's ``ddp_notebook`` strategy: the kernel forks N processes
(the ``ddp`` launcher re-executes ``sys.argv``, which a kernel cannot) that join one process group (gloo on CPU,
NCCL on GPUs) and each train on their share of every epoch. What the notebook needs around that:

- each rank uses ``cores // N`` torch threads (:class:`RankThreads`), so N processes do not oversubscribe the
  cores they share;
- the callbacks of :mod:`.progress` write events and files on rank 0 only and broadcast rank 0's decisions
  (stop between epochs, the epoch plan); :class:`~.progress.FitRecord` hands the loop's end state back to the
  kernel, which after ``fit`` holds rank 0's weights and best checkpoint, but not its loop;
- the frozen evaluation runs afterwards in the kernel itself, over the whole validation split.

The fork launcher refuses once CUDA is initialised in the kernel; nothing before ``fit`` in the templates does.
The images are shared with the forked ranks as they are (the on-disk cache is a read-only memory map).
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch.strategies import DDPStrategy

from ..data.cache import usable_cores
from ..plan.hardware import check_devices
from ..recipe import Recipe

__all__ = ["DDP_STRATEGY", "RankThreads", "check_devices", "ddp_strategy", "launched_by_scheduler",
           "process_group_backend", "threads_per_rank"]

#: Lightning's name for DDP in forked processes (the strategy recorded in ``run_info.json``)
DDP_STRATEGY = "ddp_notebook"
#: modules' attributes holding parameters a training step may leave without gradients (DDP must look for them)
_OPTIONAL_PARTS = ("adversary", "dfr_head")


def threads_per_rank(devices: int, cores: int | None = None) -> int:
    """Torch threads each of ``devices`` processes gets from the cores this kernel may use."""
    return max(1, (usable_cores() if cores is None else cores) // max(1, devices))


def launched_by_scheduler() -> bool:
    """Whether the ranks exist already: ``srun`` started one task per device, each running the notebook
    (Lightning's SLURM environment joins them; :mod:`clinagent_lab.execution.job`)."""
    return int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and SLURMEnvironment.detect()


def ddp_strategy(recipe: Recipe, module: Any = None, custom_model: bool = False) -> tuple[Any, str]:
    """The DDP strategy for ``recipe`` and ``module``, and its name for the records: ``ddp_notebook`` (the kernel
    forks the ranks), or ``ddp`` when a scheduler started them.

    DDP is told to look for parameters without gradients only when some may have none in a step: an adversary
    that saw no known group, a head refitted outside the training step, or a custom model.
    """
    unused = custom_model or any(getattr(module, name, None) is not None for name in _OPTIONAL_PARTS)
    external = launched_by_scheduler()
    # forked ranks inside a one-task SLURM job: Lightning would detect the job and read every rank's place from
    # SLURM's variables (all rank 0 of 1); the kernel's own environment numbers the ranks it forks
    environment = None if external else LightningEnvironment()
    strategy = DDPStrategy(start_method="popen" if external else "fork", find_unused_parameters=unused,
                           process_group_backend=process_group_backend(recipe), cluster_environment=environment)
    return strategy, "ddp" if external else DDP_STRATEGY


def process_group_backend(recipe: Recipe) -> str:
    """``nccl`` when the ranks train on GPUs, else ``gloo`` (``torch.cuda.is_available`` does not initialise
    CUDA, which the fork launcher would refuse)."""
    accelerator = recipe.training.accelerator
    gpu = accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available())
    return "nccl" if gpu else "gloo"


class RankThreads(L.Callback):
    """Give every rank its share of the cores (``torch.set_num_threads``) when its training starts."""

    def __init__(self, devices: int) -> None:
        self.threads = threads_per_rank(devices)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        torch.set_num_threads(self.threads)
