"""The other two seed tasks on the GPU, one iteration each (about three minutes on a GPU machine).

    python benchmarks/gpu_tasks.py [--work /tmp/clinagent-gpu-tasks] [--minutes 1]

``gpu_check.py`` trains the ISIC classifier; this runs, as a user would (``clinagent run --accelerator gpu``,
one iteration and the once-only test through papermill):

- wrist fracture detection on synthetic GRAZPEDWRI-DX-layout radiographs, a quarter of them with boxes (the
  detector's RoIAlign has no deterministic CUDA backward: the run must train, not stop);
- pneumothorax on synthetic SIIM-ACR-layout DICOMs with chest drains, the drain named as a shortcut.

It prints each run's status, hardware settings, phases and the warnings its notebook printed, and writes
``gpu_tasks.json`` in ``--work``. Without a GPU it runs on the CPU and says so. Exit code 0 when both
iterations finished ``ok``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_check import _line, one_iteration  # noqa: E402  (a sibling script)

WRIST_REQUEST = "detect wrist fractures with boxes on paediatric radiographs, only a quarter of images have boxes"
SIIM_REQUEST = "pneumothorax on chest X-rays, don't let the model cheat by looking at chest drains"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/clinagent-gpu-tasks")
    ap.add_argument("--minutes", type=float, default=1.0, help="iteration budget of each run")
    ap.add_argument("--images", type=int, default=600, help="synthetic images of each dataset")
    args = ap.parse_args()
    import torch

    from clinagent_lab.data.synth.seed_formats import siim_acr
    from clinagent_lab.data.synth.wrist import grazpedwri

    gpu = torch.cuda.is_available()
    _line("device", torch.cuda.get_device_name(0) if gpu else "NO GPU: CPU figures, not GPU ones")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for name, request, write in (
            ("wrist", WRIST_REQUEST, lambda d: grazpedwri(d, n=args.images, image_size=256, box_fraction=0.25)),
            ("siim", SIIM_REQUEST, lambda d: siim_acr(d, n=args.images, image_size=256))):
        data = work / f"{name}_data"
        start = time.perf_counter()
        try:
            if not data.exists():
                write(data)
            _line(f"{name}: synthetic data", f"{args.images} images at 256 px in {time.perf_counter() - start:.0f} s")
            results[name] = one_iteration(data, work, {"gpu": gpu}, args.minutes, request=request, name=name)
        except Exception as exc:  # keep going: the other task's figures still count
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            _line(f"{name}: FAILED", results[name]["error"])
        (work / "gpu_tasks.json").write_text(json.dumps(results, indent=2, default=str))
    ok = all(r.get("iteration_status") == "ok" and r.get("run_exit") == 0 for r in results.values())
    print("GPU TASKS PASSED" if ok else "GPU TASKS FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
