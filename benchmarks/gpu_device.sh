#!/usr/bin/env bash
# GPU machine check in one command (about 6 minutes, at most LIMIT_S=470 s): from the repository root,
#
#     bash benchmarks/gpu_device.sh
#
# for a machine whose python3 has torch, torchvision, Lightning, timm, torchmetrics, numpy, pandas, scikit-learn,
# OpenCV, matplotlib and Jinja2 but not the rest of clinagent-lab's stack, and no network. The missing packages
# come as Python 3.12 x86-64 wheels in .whl/ (WHEELS=... for another folder): installed with --no-deps into
# /tmp/site, which goes before the repository on PYTHONPATH (the kernels inherit both). Then:
#
#   1. a Jupyter kernel "python3" for this python in a private JUPYTER_DATA_DIR (the machine's own specs stay
#      untouched);
#   2. nvidia-smi, the package versions;
#   3. benchmarks/gpu_check.py: device report, resnet18 training images/s at 224 px with the initializer's
#      settings (bf16 mixed precision, channels_last, the batch fitted to GPU memory), cache build/read rates
#      with the loader workers from the cores, and a one-iteration `clinagent run --accelerator gpu` on
#      synthetic ISIC-layout data through papermill in that kernel (pinned memory, workers, the once-only test);
#      nvidia-smi samples utilisation and memory every 2 s meanwhile (gpu_util.csv);
#   4. benchmarks/ddp.py --repeats 2 (DDP over gloo, 2 CPU processes against 1, GPU hidden), if time is left.
#
# Every step has its own timeout. Logs and results go to $OUT (else /tmp/out), at most 6 files: device.log,
# gpu_check.json, gpu_util.csv, ddp.log, session.tar.gz (the session's JSON, events, executed notebooks and
# figures, without checkpoints), nvidia-smi.txt.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
START=$SECONDS
LIMIT_S=${LIMIT_S:-470}  # everything ends by then (the ddp step is skipped or cut to fit)
OUT_DIR=${OUT:-/tmp/out}
WHEELS=${WHEELS:-.whl}
WORK=${WORK:-/tmp/clinagent-gpu-check}
mkdir -p "$OUT_DIR" "$WORK"

step() { printf '\n==== [%3ds] %s\n' $((SECONDS - START)) "$*"; }
left() { echo $((LIMIT_S - (SECONDS - START))); }

main() {
step "install the wheels of $WHEELS into /tmp/site ($(ls "$WHEELS"/*.whl 2>/dev/null | wc -l) wheels)"
PY=${PYTHON:-python3}
timeout 180 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl || { echo "FAILED: wheel install"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export JUPYTER_DATA_DIR=/tmp/clinagent-jupyter JUPYTER_CONFIG_DIR=/tmp/clinagent-jupyter/config
export LITELLM_LOCAL_MODEL_COST_MAP=True PYTHONUNBUFFERED=1 MPLBACKEND=Agg HF_HUB_OFFLINE=1
export CLINAGENT_CACHE_DIR=$WORK/cache TORCH_HOME=$WORK/torch IPYTHONDIR=/tmp/clinagent-jupyter/ipython
mkdir -p "$JUPYTER_DATA_DIR" "$IPYTHONDIR"

step "register the kernel python3 for $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
timeout 120 "$PY" -m ipykernel install --user --name python3 --display-name "Python 3 (clinagent)" \
    || { echo "FAILED: kernel registration"; exit 1; }
timeout 60 "$PY" -c "from jupyter_client.kernelspec import KernelSpecManager as K; s = K().get_kernel_spec('python3'); \
print('kernel python3:', s.argv[0], '(', K().find_kernel_specs()['python3'], ')')"

step "nvidia-smi"
timeout 30 nvidia-smi 2>&1 | tee "$OUT_DIR/nvidia-smi.txt"
echo "cores: $(nproc), memory: $(free -g | awk '/Mem:/ {print $2}') GiB, python: $(command -v "$PY")"

step "package versions"
timeout 120 "$PY" - <<'EOF'
from importlib.metadata import PackageNotFoundError, version
names = ("torch torchvision lightning torchmetrics timm numpy pandas scikit-learn opencv-python-headless albumentations "
         "pydantic papermill nbclient nbformat jupyter_client ipykernel ipython pyzmq tornado captum rapidfuzz").split()
found = []
for name in names:
    try:
        found.append(f"{name} {version(name)}")
    except PackageNotFoundError:
        found.append(f"{name} MISSING")
print(", ".join(found))
import clinagent_lab, torch
print("clinagent_lab from", clinagent_lab.__file__, "| CUDA available:", torch.cuda.is_available())
EOF

step "gpu_check.py (training rate, cache rates, one clinagent iteration on the GPU)"
nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.memory,memory.used,power.draw,clocks.sm \
    --format=csv -l 2 > "$OUT_DIR/gpu_util.csv" 2>/dev/null &
SMI_PID=$!
GPU_S=$(( $(left) - 150 )); [ "$GPU_S" -gt 330 ] && GPU_S=330
timeout -k 10 "$GPU_S" "$PY" benchmarks/gpu_check.py --work "$WORK" --images 2000 --minutes 2
GPU_RC=$?
kill "$SMI_PID" 2>/dev/null; wait "$SMI_PID" 2>/dev/null
cp "$WORK/gpu_check.json" "$OUT_DIR/gpu_check.json" 2>/dev/null
if [ -d "$WORK/session" ]; then
    tar -C "$WORK" -czf "$OUT_DIR/session.tar.gz" --exclude='*.ckpt' --exclude='*.npz' --exclude='*.csv' session \
        2>/dev/null || true
fi
echo "gpu_check exit code: $GPU_RC (124: cut by its ${GPU_S}s timeout)"

DDP_S=$(( $(left) - 10 )); [ "$DDP_S" -gt 240 ] && DDP_S=240
if [ "$DDP_S" -ge 90 ]; then
    step "ddp.py --repeats 2 (CPU processes over gloo, GPU hidden; ${DDP_S}s at most)"
    CUDA_VISIBLE_DEVICES= timeout -k 10 "$DDP_S" "$PY" benchmarks/ddp.py --repeats 2 2>&1 | tee "$OUT_DIR/ddp.log"
    DDP_RC=${PIPESTATUS[0]}
    echo "ddp exit code: $DDP_RC (124: cut by its timeout)"
else
    step "ddp.py skipped: ${DDP_S}s left"
    DDP_RC=skipped
fi

step "done in $((SECONDS - START)) s: gpu_check $GPU_RC, ddp $DDP_RC; files in $OUT_DIR: $(ls "$OUT_DIR" | tr '\n' ' ')"
return "$GPU_RC"
}

main 2>&1 | tee "$OUT_DIR/device.log"
exit "${PIPESTATUS[0]}"
