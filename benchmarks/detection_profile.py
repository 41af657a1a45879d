"""Where a detection iteration's epoch goes: data wait, training steps, validation forward, epoch-end metrics,
callbacks.

    python benchmarks/detection_profile.py [--work /tmp/det-profile] [--epochs 2] [--workers 2]

Builds the recipe the initializer writes for a GPU machine (Faster R-CNN MobileNetV3, 224 px, batch 8) on
synthetic GRAZPEDWRI-DX-layout radiographs (600 at 256 px, boxes on a quarter), then runs the iteration
notebook's training cell in this process, on this machine's accelerator (``--accelerator``; CPU: 32-bit, the
loader workers of ``--workers``) with the notebook's own ``Trainer`` arguments (progress, time budget, best
checkpoint) and Lightning's ``SimpleProfiler``. Prints, per epoch and in all, the seconds spent waiting for
batches, in training steps, in validation batches, at the validation epoch's end (the box metrics) and in the
callbacks, and the note the notebook prints (:class:`~clinagent_lab.models.timing.EpochTimes`). Writes
``profile.json`` in ``--work``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REQUEST = "detect wrist fractures with boxes on paediatric radiographs, only a quarter of images have boxes"


def gpu_recipe(data: Path, accelerator: str, workers: int) -> tuple[dict, dict, Path]:
    """The initializer's GPU recipe for ``data`` (an H200-like machine), moved to ``accelerator``."""
    from clinagent_lab.agent.prepare import interpret, prepare_data
    from clinagent_lab.data.splits import split_table
    from clinagent_lab.plan.hardware import Hardware
    from clinagent_lab.plan.initializer import initialize_recipe

    dataset, fp = prepare_data(data)
    spec = interpret(REQUEST, fp)
    spec = spec.model_copy(update={"budget": spec.budget.model_copy(update={"iteration_minutes": 1.0})})
    hw = Hardware(accelerator="gpu", devices=1, cores=16, gpu_name="NVIDIA H200", gpu_memory_gib=139.8, bf16=True)
    recipe = initialize_recipe(spec, fp, hardware=hw).model_dump(mode="json")
    if accelerator == "cpu":
        recipe["training"].update(accelerator="cpu", precision="32-true", channels_last=False)
        recipe["data"].update(pin_memory=False)
    recipe["data"]["num_workers"] = workers
    splits = data.parent / "splits.csv"
    split_table(dataset).to_csv(splits, index=False)
    return recipe, spec.model_dump(mode="json"), splits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/det-profile")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--accelerator", default="cpu")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="the notebook's time budget for training (default: none, train --epochs)")
    args = ap.parse_args()
    import lightning as L
    from lightning.pytorch.profilers import SimpleProfiler

    from clinagent_lab.data.synth.wrist import grazpedwri
    from clinagent_lab.notebooks.runtime import prepare_run

    work = Path(args.work)
    data = work / "data"
    if not (data / "dataset.csv").exists():
        grazpedwri(data, n=args.images, image_size=256, box_fraction=0.25)
    recipe, spec, splits = gpu_recipe(data, args.accelerator, args.workers)
    recipe["training"]["max_time_s"] = args.budget_s
    print("recipe:", recipe["model"]["architecture"], recipe["data"]["image_size"], "px, batch",
          recipe["data"]["batch_size"], recipe["training"]["precision"], "workers", recipe["data"]["num_workers"])
    out = work / "run"
    run = prepare_run(recipe=recipe, spec=spec, seed=0, output_dir=str(out), max_epochs=args.epochs)
    dataset = run.load_data(str(data), "", str(splits))
    dm = run.backend.make_datamodule(dataset, run.recipe, run.spec)
    module = run.backend.make_module(run.recipe, dataset, run.spec, datamodule=dm)
    profiler = SimpleProfiler(dirpath=str(work), filename="simple_profiler")
    trainer = L.Trainer(**run.trainer_kwargs(), profiler=profiler)
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    fit_s = time.perf_counter() - start
    totals = {k: round(sum(v), 3) for k, v in profiler.recorded_durations.items()}
    counts = {k: len(v) for k, v in profiler.recorded_durations.items()}
    rows = sorted(totals.items(), key=lambda kv: -kv[1])
    print(f"fit {fit_s:.1f} s, {trainer.global_step} steps, {trainer.current_epoch} epochs")
    for name, seconds in rows[:30]:
        print(f"  {seconds:8.2f} s  x{counts[name]:<5} {name}")
    times = next(cb for cb in trainer.callbacks if type(cb).__name__ == "EpochTimes")
    budget = run.time_budget
    print(f"time budget: first epoch {budget.first_epoch or 0:.1f} s, one-off {budget.one_off_s:.1f} s, "
          f"stopped {budget.stopped}")
    (work / "profile.json").write_text(json.dumps({"fit_s": fit_s, "totals": totals, "counts": counts,
                                                   "epochs": times.epochs, "note": times.note()}, indent=1))


if __name__ == "__main__":
    main()
