"""GPU machine check (a few minutes): device, precision, training images/s at 224 px, cache rates, one iteration.

    python benchmarks/gpu_check.py [--work /tmp/clinagent-gpu-check] [--images 2000]

Run it unchanged on any machine. Without a GPU it says so in its first lines and runs every check on the CPU
at a small scale (those figures are not GPU figures). Nothing is downloaded: weights are random unless
ImageNet weights are already in the local cache (``clinagent weights list``). Exit code 0 when every check
ran, 1 when one failed (its error is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _line(label: str, value: object) -> None:
    print(f"{label:<34} {value}", flush=True)


def device_report() -> dict:
    import torch

    from clinagent_lab.plan.hardware import detect_hardware, training_settings

    info = {"torch": torch.__version__, "cuda_build": torch.version.cuda, "gpu": torch.cuda.is_available(),
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    if info["gpu"]:
        info["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    if not info["gpu"]:
        print("=" * 78)
        print("NO GPU: torch.cuda.is_available() is False "
              f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}, "
              f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}).")
        print("Every check below runs on the CPU at a small scale: these are NOT GPU figures.")
        print("=" * 78, flush=True)
    hw = detect_hardware("auto", 1)
    settings, _ = training_settings(hw, "resnet18", 224)
    info.update({"accelerator": hw.accelerator, "gpus": torch.cuda.device_count(), "device": hw.gpu_name,
                 "memory_gib": hw.gpu_memory_gib, "bf16": hw.bf16, "cores": hw.cores,
                 "precision": settings["training.precision"], "batch_size": settings.get("data.batch_size"),
                 "loader_workers": settings["data.num_workers"]})
    for key in ("torch", "cuda_build", "cudnn", "accelerator", "gpus", "device", "capability", "memory_gib", "bf16",
                "cores", "precision", "batch_size", "loader_workers"):
        _line(key, info.get(key))
    return info


def train_rate(info: dict, steps: int) -> dict:
    """Images/s of resnet18 training steps at 224 px with the settings the initializer would pick."""
    import torch
    from torchvision.models import resnet18

    gpu = info["gpu"]
    device = torch.device("cuda" if gpu else "cpu")
    batch = min(int(info["batch_size"] or 16), 256) if gpu else 8
    model = resnet18(num_classes=8).to(device)
    if gpu:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, 224, 224, device=device)
    if gpu:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 8, (batch,), device=device)
    dtype = torch.bfloat16 if info["precision"] == "bf16-mixed" else torch.float16
    scaler = torch.amp.GradScaler(enabled=gpu and dtype == torch.float16)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=gpu):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(3):
        step()
    if gpu:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if gpu:
        torch.cuda.synchronize()
    rate = steps * batch / (time.perf_counter() - start)
    out = {"train_img_s_224": round(rate, 1), "train_batch": batch,
           "peak_gpu_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if gpu else None}
    _line("train images/s at 224 px (resnet18)", f"{out['train_img_s_224']} (batch {batch}, {info['precision']})")
    return out


def cache_rates(data: Path, info: dict) -> dict:
    """Build the preprocessed cache of the synthetic ISIC-layout images at 224 px, then read it back."""
    import numpy as np

    from clinagent_lab.data.cache import cache_root, clear_cache, image_cache
    from clinagent_lab.data.formats import load_dataset

    ds = load_dataset(data)
    rows = np.arange(len(ds.table))
    clear_cache()
    start = time.perf_counter()
    cached = image_cache(ds.read_image, ds.table["path"].tolist(), rows, size=224, channels=3,
                         modality="dermoscopy", label="gpu_check cache")
    build = time.perf_counter() - start
    order = np.random.default_rng(0).permutation(len(cached))
    start = time.perf_counter()
    for k in order:
        cached[int(k)]
    read = time.perf_counter() - start
    out = {"cache_dir": str(cache_root()), "cache_build_img_s": round(len(rows) / build, 1),
           "cache_read_img_s": round(len(rows) / read, 1)}
    _line("cache build images/s (600x450 JPEG)", f"{out['cache_build_img_s']} with {info['cores']} cores")
    _line("cache random read images/s", out["cache_read_img_s"])
    return out


ISIC_REQUEST = "classify dermoscopic lesions into the ISIC categories, melanoma matters most"


def one_iteration(data: Path, work: Path, info: dict, minutes: float, *, request: str = ISIC_REQUEST,
                  name: str = "session") -> dict:
    """``clinagent run`` with one iteration and the once-only test, through papermill, as a user would."""
    out_dir = work / name
    cmd = [sys.executable, "-m", "clinagent_lab.cli", "run", "--intent", request, "--data", str(data),
           "--out", str(out_dir), "--max-iterations", "1", "--iteration-minutes", str(minutes), "--yes",
           "--accelerator", "gpu" if info["gpu"] else "cpu"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    session = json.loads((out_dir / "session.json").read_text()) if (out_dir / "session.json").exists() else {}
    its = session.get("iterations") or [{}]
    recipe = its[0].get("recipe", {})
    training, data_cfg = recipe.get("training", {}), recipe.get("data", {})
    out = {"run_exit": done.returncode, "run_wall_s": round(wall, 1), "iteration_status": its[0].get("status"),
           "iteration_error": its[0].get("error"), "selection_value": its[0].get("selection_value"),
           "test_once": (session.get("final_test") or {}).get("n_samples"),
           "architecture": recipe.get("model", {}).get("architecture"),
           "pretrained": recipe.get("model", {}).get("pretrained"),
           "accelerator": training.get("accelerator"), "precision": training.get("precision"),
           "channels_last": training.get("channels_last"), "deterministic": training.get("deterministic"),
           "batch_size": data_cfg.get("batch_size"), "image_size": data_cfg.get("image_size"),
           "pin_memory": data_cfg.get("pin_memory"), "loader_workers": data_cfg.get("num_workers"),
           "max_train_samples": data_cfg.get("max_train_samples"),
           **_iteration_phases(Path(its[0].get("output_dir") or out_dir), data_cfg.get("batch_size"))}
    for key, value in out.items():
        _line(f"run: {key}", value)
    for line in _notebook_warnings(Path(its[0].get("notebook") or out_dir / "missing.ipynb")):
        _line("run: notebook warning", line)
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
    return out


def _iteration_phases(folder: Path, batch: int | None) -> dict:
    """Seconds before, in and after ``trainer.fit`` in the iteration's kernel, and its training images/s."""
    events = folder / "events.jsonl"
    if not events.exists():
        return {}
    rows = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    times = {e["type"]: e["time"] for e in rows if e["type"] in ("fit_started", "fit_finished", "evaluated")}
    first = min((e["time"] for e in rows), default=None)
    info = json.loads((folder / "run_info.json").read_text()) if (folder / "run_info.json").exists() else {}
    out = {"epochs_run": info.get("epochs_run"), "global_step": info.get("global_step"),
           "stopped_by_time": info.get("stopped_by_time")}
    if "fit_started" in times and "fit_finished" in times and first is not None:
        fit = times["fit_finished"] - times["fit_started"]
        out.update({"kernel_before_fit_s": round(times["fit_started"] - first, 1), "fit_s": round(fit, 1),
                    "after_fit_s": round(times.get("evaluated", times["fit_finished"]) - times["fit_finished"], 1)})
        if batch and info.get("global_step"):  # every step a full batch (the last one may be short)
            out["fit_img_s_incl_validation"] = round(info["global_step"] * batch / max(fit, 1e-6), 1)
        # the first epoch carries the one-off costs (CUDA context, kernel loading or JIT, loader start-up)
        ends = [times["fit_started"]] + [e["time"] for e in rows if e["type"] == "epoch"]
        epochs = [b - a for a, b in zip(ends, ends[1:])]
        if epochs:
            out["first_epoch_s"] = round(epochs[0], 2)
        if len(epochs) > 1:
            out["later_epoch_median_s"] = round(sorted(epochs[1:])[len(epochs[1:]) // 2], 2)
    # where the epochs' time went (EpochTimes): data wait, steps, the first step, validation, metrics, checkpoint
    timing = [e for e in rows if e["type"] == "log" and "timing" in e]
    if timing:
        out["epoch_phases"] = timing[-1]["timing"]
        out["epoch_note"] = timing[-1].get("message")
    return out


def _notebook_warnings(notebook: Path, limit: int = 12) -> list[str]:
    """Distinct warning lines the executed notebook printed to stderr (what a user would see in the cells)."""
    if not notebook.exists():
        return []
    seen: list[str] = []
    for cell in json.loads(notebook.read_text()).get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("name") != "stderr":
                continue
            text = output.get("text", "")
            for line in (text if isinstance(text, str) else "".join(text)).splitlines():
                line = line.strip()
                if "warn" in line.lower() and line[:160] not in seen:
                    seen.append(line[:160])
    return seen[:limit]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/clinagent-gpu-check")
    ap.add_argument("--images", type=int, default=None, help="synthetic ISIC images (default 2000 GPU / 200 CPU)")
    ap.add_argument("--minutes", type=float, default=None, help="iteration budget (default 3 GPU / 1.5 CPU)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CLINAGENT_CACHE_DIR", str(work / "cache"))
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    results: dict = {}
    failed = []
    info = device_report()
    results["device"] = info
    n = args.images or (2000 if info["gpu"] else 200)
    data = work / f"isic_{n}"
    if not (data / "ISIC_2019_Training_GroundTruth.csv").exists():
        from clinagent_lab.data.synth.seed_formats import isic2019

        start = time.perf_counter()
        isic2019(data, n=n, image_size=96, save_size=(450, 600), seed=0)
        _line("synthetic ISIC-layout data", f"{n} JPEGs at 600x450 in {time.perf_counter() - start:.0f} s")
    checks = [("train", lambda: train_rate(info, 30 if info["gpu"] else 3)),
              ("cache", lambda: cache_rates(data, info)),
              ("run", lambda: one_iteration(data, work, info, args.minutes or (3.0 if info["gpu"] else 1.5)))]
    for name, check in checks:
        try:
            results[name] = check()
        except Exception as exc:  # noqa: BLE001 - report every check, then fail the script
            failed.append(name)
            print(f"check '{name}' failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        # after each check: a run cut short by a timeout still leaves what it measured
        (work / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str))
    _line("results", work / "gpu_check.json")
    ok = not failed and results.get("run", {}).get("iteration_status") == "ok"
    print("GPU CHECK " + ("PASSED" if ok and info["gpu"] else "PASSED ON CPU (no GPU)" if ok else
                          f"FAILED ({', '.join(failed) or 'iteration not ok'})"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
