#!/usr/bin/env bash
# On a lent H100/H200, in one device call (about 9 minutes): issue 6's GPU measurements with the
# JAX backend, each step under its own time limit, outputs and logs under $OUT.
#   here:  bash benchmarks/gpu_wheels.sh
#   there: device run, carry [".whl"], command: bash benchmarks/gpu_run.sh [steps...]
# Steps (default all): throughput spectrum study. SMALL=1 runs CPU sizes (to check the script);
# PYTHON picks the interpreter and SKIP_INSTALL=1 uses its packages as they are.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/xsearch-gpu-out}
mkdir -p "$OUT"
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "no nvidia-smi") | tee "$OUT/device.txt"
"$PYTHON" -c "import jax, keras, optuna; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__, 'optuna', optuna.__version__)" \
    | tee -a "$OUT/device.txt"
if [ "${SMALL:-0}" = 1 ]; then  # the study step runs quickstart: imagenet-small's designs crawl on a CPU
    size=(--small); study=(--study quickstart --trials 2)
else
    size=(); study=(--study imagenet-small --data-dir /tmp/imagenet64 --trials 4 --timeout 150)
fi
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(throughput spectrum study)
for step in "${steps[@]}"; do
    case $step in
    throughput)
        timeout 240 "$PYTHON" -m benchmarks.throughput "${size[@]}" --precision mixed_bfloat16 \
            --json "$OUT/throughput.json" 2>&1 | tee "$OUT/throughput.log" ;;
    spectrum)
        timeout 150 "$PYTHON" -m benchmarks.spectrum "${size[@]}" --json "$OUT/spectrum.json" 2>&1 \
            | tee "$OUT/spectrum.log" ;;
    study)  # imagenet-small's space, schedule and batch probe on 40,000 random 64x64 images
        [ "${SMALL:-0}" = 1 ] || "$PYTHON" -m benchmarks.synthetic_imagenet /tmp/imagenet64 --train-images 40000 \
            --val-images 2000 || exit 1
        timeout 200 "$PYTHON" -m xsearch.cli run "${study[@]}" --batch-size auto --out /tmp/xsearch-gpu-run 2>&1 \
            | tail -40 | tee "$OUT/study.log"
        cp /tmp/xsearch-gpu-run/trials.csv "$OUT/study-trials.csv" ;;
    *) echo "unknown step $step (throughput, spectrum, study)"; exit 2 ;;
    esac
done
