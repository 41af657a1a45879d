"""What the training machine offers, and the settings a practitioner would pick for it.

:func:`detect_hardware` reads the accelerator, device count, cores and GPU memory (and checks a requested
device count against what exists); :func:`training_settings` turns that into recipe values with reasons:
mixed precision (bf16 where the GPU supports it, else 16-bit), channels_last for CNNs, pinned memory, loader
workers from the core count and a batch size fitted to the GPU's memory. On CPU everything stays at the
tested defaults (32-bit, one process unless asked, no loader workers on a small machine).

Example:
    >>> hw = Hardware(accelerator="cpu", devices=1, cores=2)
    >>> training_settings(hw, "small_cnn", 64)[0]["training.precision"]
    '32-true'
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..data.cache import usable_cores
from ..errors import RecipeError

__all__ = ["Hardware", "check_devices", "check_local_slots", "detect_hardware", "training_settings", "measure_throughput", "ACTIVATION_MIB_224"]

#: training memory per image at 224 px with mixed precision (activations + gradients), MiB, measured order of
#: magnitude for each family; scaled by pixel count. Unknown architectures use the largest.
ACTIVATION_MIB_224 = {"small_cnn": 25.0, "resnet10t": 30.0, "resnet18": 35.0, "resnet34": 50.0,
                      "resnet50": 110.0, "efficientnet_b0": 90.0, "convnext_atto": 45.0, "convnext_tiny": 120.0}
_GPU_MEMORY_SHARE = 0.6  # the rest: weights, optimiser state, cuDNN workspaces, fragmentation


@dataclass(frozen=True)
class Hardware:
    accelerator: str  # "cpu" or "gpu"
    devices: int
    cores: int
    gpu_name: str | None = None
    gpu_memory_gib: float | None = None
    bf16: bool = False

    @property
    def gpu(self) -> bool:
        return self.accelerator == "gpu"


def detect_hardware(accelerator: str = "auto", devices: int = 1) -> Hardware:
    """The machine as training will see it; ``accelerator="auto"`` means the GPU when one exists.

    Raises:
        RecipeError: more devices (GPUs, or CPU processes than cores) than exist, or ``gpu`` without a GPU.
    """
    import torch  # deferred: heavy (CUDA start-up)

    cores = usable_cores()
    gpus = _gpu_count()
    if accelerator == "gpu" and gpus == 0:
        raise RecipeError("no GPU is visible to PyTorch", where="--accelerator gpu",
                          fix="use --accelerator cpu (or auto), or check the CUDA driver and CUDA_VISIBLE_DEVICES")
    kind = "gpu" if accelerator == "gpu" or (accelerator == "auto" and gpus > 0) else "cpu"
    have = gpus if kind == "gpu" else cores
    if devices > have:
        what = f"{gpus} GPU(s)" if kind == "gpu" else f"{cores} CPU core(s) for {devices} processes"
        raise RecipeError(f"--devices {devices} asked, this machine has {what}", where="--devices",
                          fix=f"use --devices {max(1, have)} or fewer")
    if kind == "cpu":
        return Hardware(accelerator="cpu", devices=devices, cores=cores)
    props = torch.cuda.get_device_properties(0)
    return Hardware(accelerator="gpu", devices=devices, cores=cores, gpu_name=props.name,
                    gpu_memory_gib=round(props.total_memory / 2**30, 1), bf16=bool(torch.cuda.is_bf16_supported()))


def check_devices(backend: Any, recipe: Any) -> None:
    """Refuse ``training.devices > 1`` for a task type that trains in one process only (``backend.ddp``).

    Raises:
        RecipeError: naming the task type and the fix.
    """
    devices = recipe.training.devices
    if devices > 1 and not backend.ddp:
        raise RecipeError(f"training.devices = {devices}: {backend.name} trains in one process (its teacher / "
                          "pseudo-label stages and box metrics are not split across processes)",
                          where="training.devices (--devices)", fix="use --devices 1 for this task")


def check_local_slots(slots: int, devices: int = 1, accelerator: str = "auto") -> Hardware:
    """Refuse ``slots`` local notebooks at once (``[execution] local_parallel``) of ``devices`` processes each
    when together they need more GPUs, or more CPU cores, than this machine has.

    Raises:
        RecipeError: what was asked, what exists, and the largest ``local_parallel`` that fits.
    """
    hw = detect_hardware(accelerator, devices)
    have = hw.cores if hw.accelerator == "cpu" else _gpu_count()
    need = slots * hw.devices
    if need > have:
        what = "CPU core(s)" if hw.accelerator == "cpu" else "GPU(s)"
        raise RecipeError(f"local_parallel = {slots} notebooks at once with {hw.devices} {hw.accelerator} "
                          f"device(s) each needs {need} {what}; this machine has {have}",
                          where="[execution] local_parallel with --devices",
                          fix=f"set local_parallel to {max(1, have // hw.devices)} or fewer, or lower --devices")
    return hw


def _gpu_count() -> int:
    import torch  # deferred: heavy (CUDA start-up)

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _fitted_batch(hw: Hardware, arch: str, size: int) -> tuple[int, str]:
    family = arch.split(":", 1)[-1].split(".", 1)[0]
    per_image = ACTIVATION_MIB_224.get(family, max(ACTIVATION_MIB_224.values())) * (size / 224.0) ** 2
    budget = (hw.gpu_memory_gib or 8.0) * 1024 * _GPU_MEMORY_SHARE
    batch = 8
    while batch * 2 * per_image <= budget and batch < 256:
        batch *= 2
    return batch, (f"{batch} images per step per GPU: ~{per_image:.0f} MiB each at {size} px fits "
                   f"{_GPU_MEMORY_SHARE:.0%} of the {hw.gpu_memory_gib} GiB of the {hw.gpu_name} (estimated)")


def training_settings(hw: Hardware, arch: str, size: int) -> tuple[dict[str, Any], dict[str, str]]:
    """Recipe values (dotted fields) and their reasons for ``arch`` at ``size`` px on ``hw``."""
    values: dict[str, Any] = {"training.accelerator": hw.accelerator, "training.devices": hw.devices}
    reasons: dict[str, str] = {"training.accelerator": (f"{hw.gpu_name or 'a GPU'} is available" if hw.gpu else
                                                        f"CPU ({hw.cores} core(s)); no GPU in use")}
    if not hw.gpu:
        values.update({"training.precision": "32-true", "data.num_workers": 0, "data.pin_memory": False,
                       "training.channels_last": False})
        reasons["training.precision"] = "CPU: 32-bit (mixed precision brings no speed on CPU)"
        reasons["data.num_workers"] = (f"{hw.cores} core(s): images come from the preprocessed cache, so the "
                                       f"training process keeps every core")
        if hw.devices > 1:
            reasons["training.devices"] = (
                f"{hw.devices} CPU processes, as asked: DDP forked from the notebook's kernel (ddp_notebook) over "
                f"gloo, {max(1, hw.cores // hw.devices)} thread(s) each; data.batch_size images per step in each "
                f"process")
        return values, reasons
    precision = "bf16-mixed" if hw.bf16 else "16-mixed"
    cnn = not any(t in arch for t in ("vit", "deit", "swin", "beit"))
    workers = max(1, min(8, hw.cores // max(1, hw.devices) - 1))
    batch, reasons["data.batch_size"] = _fitted_batch(hw, arch, size)
    values.update({"training.precision": precision, "training.channels_last": cnn, "data.pin_memory": True,
                   "data.num_workers": workers, "data.batch_size": batch})
    reasons["training.precision"] = (f"{hw.gpu_name} supports bfloat16: bf16 mixed precision (no loss scaling)"
                                     if hw.bf16 else f"{hw.gpu_name}: 16-bit mixed precision with loss scaling")
    reasons["training.channels_last"] = ("CNN on a GPU: channels_last memory format for faster convolutions"
                                         if cnn else "transformer: channels_last brings nothing")
    reasons["data.pin_memory"] = "GPU: page-locked batches copy to the device asynchronously"
    reasons["data.num_workers"] = f"{workers} loader process(es) per GPU from {hw.cores} cores"
    reasons["training.devices"] = (f"{hw.devices} GPUs: DDP forked from the notebook's kernel (ddp_notebook) over "
                                   f"NCCL" if hw.devices > 1 else "one GPU: a single process")
    return values, reasons


def measure_throughput(model: Any, num_classes: int, image_size: int, *, batch: int = 32,
                       seconds: float = 1.5) -> float:
    """Training images/s of ``model`` (a ``ModelConfig``) at ``image_size`` px on this CPU, measured now.

    Forward/backward steps on random images after one warm-up step, for about ``seconds`` (at least one step):
    what this machine, and whatever else runs on it, gives, for fitting epochs and the training subsample to the
    budget.
    """
    import torch  # deferred: heavy

    from ..models.backbones import create_backbone  # deferred: imports torch

    net = create_backbone(model.model_copy(update={"pretrained": None, "pretrained_path": None}), num_classes,
                          image_size)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    x = torch.randn(batch, int(model.in_channels), image_size, image_size)
    y = torch.randint(0, num_classes, (batch,))
    elapsed, steps = 0.0, -1
    while steps < 1 or (elapsed < seconds and steps < 20):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if steps:  # the first step pays one-off costs
            elapsed += time.perf_counter() - start
    return batch * steps / max(elapsed, 1e-6)
