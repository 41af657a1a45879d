"""Training in two CPU processes (DDP over gloo) against one: the same epochs of the classification notebook.

Usage:
    python benchmarks/ddp.py [DATA] [--epochs 3] [--batch 64] [--repeats 1]

DATA defaults to a synthetic chest-radiograph-like set written to a temporary folder; pass
``../shared/data/pneumoniamnist.npz`` for the real one. Each run executes the packaged classification template
with papermill, as an iteration does, with the initializer's recipe for the data, the epochs fixed (no time
budget) and the same global batch: ``--batch`` images per step in one process, half of them in each of two, so
both take the same optimisation steps at the same learning rate. Printed per run: the training wall time (from
the notebook's ``fit_started`` to its ``fit_finished`` event), the whole notebook's, and the validation AUROC of
the frozen evaluator (the validation split only; the test split is never read); then the ratios two / one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def prepare(data: Path, work: Path) -> tuple[dict, dict, Path]:
    """The recipe and spec an iteration on ``data`` starts from, and its frozen split."""
    from clinagent_lab.agent.engine import prepare_data
    from clinagent_lab.data.splits import split_table
    from clinagent_lab.intent import ground_spec, parse_offline
    from clinagent_lab.plan.initializer import initialize_recipe

    dataset, fp = prepare_data(data)
    splits = work / "splits.csv"
    split_table(dataset).to_csv(splits, index=False)
    spec = ground_spec(parse_offline("pneumonia on paediatric chest x-rays"), fp)
    recipe = initialize_recipe(spec, fp)
    return recipe.model_dump(mode="json"), spec.model_dump(mode="json"), splits


def run(data: Path, splits: Path, recipe: dict, spec: dict, devices: int, batch: int, epochs: int,
        out: Path) -> dict:
    import papermill as pm

    from clinagent_lab.notebooks.events import read_events
    from clinagent_lab.notebooks.render import template_path
    from clinagent_lab.recipe import Recipe, apply_patch

    fixed = apply_patch(Recipe.model_validate(recipe), {
        "training.accelerator": "cpu", "training.devices": devices, "data.batch_size": batch // devices,
        "data.max_train_samples": None, "training.max_epochs": epochs, "training.max_time_s": None})
    out.mkdir(parents=True)
    start = time.perf_counter()
    pm.execute_notebook(str(template_path("classification.ipynb")), str(out / "iteration.ipynb"),
                        kernel_name="python3", progress_bar=False, cwd=str(out),
                        parameters={"data_path": str(data), "splits_path": str(splits), "output_dir": str(out),
                                    "recipe": fixed.model_dump(mode="json"), "spec": spec, "max_epochs": epochs})
    wall = time.perf_counter() - start
    events, _ = read_events(out / "events.jsonl")
    times = {e["type"]: e["time"] for e in events if e["type"] in ("fit_started", "fit_finished")}
    info = json.loads((out / "run_info.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    return {"devices": devices, "world_size": info.get("world_size"), "batch_per_process": batch // devices,
            "epochs": info["epochs_run"], "steps": info["global_step"],
            "fit_s": round(times["fit_finished"] - times["fit_started"], 2), "notebook_s": round(wall, 2),
            "val_auroc": round(metrics["auroc"], 4), "val_n": metrics.get("n")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", help="dataset (default: synthetic, 1,200 images at 28 px)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64, help="global batch: per step, over all processes")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each (the best training time is kept)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clinagent-ddp-"))
    data = Path(args.data) if args.data else None
    if data is None:
        from clinagent_lab.data.synth import generate

        data = generate("chest_drain", work / "data", seed=0, n=1200, image_size=28)
    recipe, spec, splits = prepare(data, work)
    results: dict[int, list[dict]] = {1: [], 2: []}
    for repeat in range(args.repeats):
        for devices in (1, 2):
            row = run(data, splits, recipe, spec, devices, args.batch, args.epochs,
                      work / f"run_{devices}_{repeat}")
            print(json.dumps(row), flush=True)
            results[devices].append(row)
    one, two = (min(results[d], key=lambda r: r["fit_s"]) for d in (1, 2))
    print(f"\n{'processes':>9} {'batch each':>10} {'steps':>6} {'fit s':>7} {'notebook s':>10} {'val AUROC':>9}")
    for row in (one, two):
        print(f"{row['world_size']:>9} {row['batch_per_process']:>10} {row['steps']:>6} {row['fit_s']:>7.2f} "
              f"{row['notebook_s']:>10.2f} {row['val_auroc']:>9.4f}")
    print(f"two / one: training {two['fit_s'] / one['fit_s']:.2f}, notebook {two['notebook_s'] / one['notebook_s']:.2f},"
          f" val AUROC {two['val_auroc'] - one['val_auroc']:+.4f}")


if __name__ == "__main__":
    main()
