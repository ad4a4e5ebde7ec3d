#!/usr/bin/env bash
# On a GPU machine (measured on H100 and H200) without network access: the GPU measurements with the JAX backend, each step under its own time
# limit (measured on an H200: throughput 248 s, throughput64 about 190 s, spectrum about 190 s for its 6 points,
# study 300 s for 3 trials), outputs and logs under $OUT.
# Where a session on the GPU machine is limited in time, run the steps in several calls: name the steps of each.
#   on a machine with network:  bash benchmarks/gpu_wheels.sh     (the wheels, in .whl/)
#   on the GPU machine, with .whl/ copied there:  bash benchmarks/gpu_run.sh [steps...]
# Steps (default all): overhead throughput throughput64 spectrum study; OVERHEAD_S, THROUGHPUT_S, THROUGHPUT64_S,
# SPECTRUM_S and STUDY_S cap them, SPECTRUM_SEGMENTS picks the spectrum's points (in order; ratios are to the
# first, and a capped run logs the points it measured), STUDY_BATCH sets the study's batch (auto probes it).
# SMALL=1 runs CPU sizes (to check the script); PYTHON picks the interpreter and SKIP_INSTALL=1 uses its
# packages as they are.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
case $PYTHON in */*) PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;; esac  # the study step cds
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
    overhead=(); large=(--small); small=(--image-size 32 --batch-size 8 --steps 3); spectrum=(--small)
    study=(--study quickstart --trials 2 --batch-size auto)
else  # imagenet-small's space and schedule (3 epochs, not 10: its [asha] stops at epoch 2) at its batch on 40,000 random 64x64 images
    overhead=(--data-dir /tmp/imagenet64 --image-size 64 --width 1.0 --middle-repeats 8 --epochs 3 --batch-size 256)
    large=(--batch-size 128); small=(--image-size 64 --batch-size 256)
    spectrum=(--image-size 64 --batch-size 256 --steps 10 --segments ${SPECTRUM_SEGMENTS:-1 2 4 8 16 depthwise}
              --precision mixed_bfloat16)
    study=(--study /tmp/imagenet-small-3-epochs.toml --data-dir /tmp/imagenet64 --trials 4 --timeout "${STUDY_S:-180}"
           --batch-size "${STUDY_BATCH:-256}")  # auto probes 8..1024: a compile (30-90 s on an H200) each
fi
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(overhead throughput throughput64 spectrum study)
synthetic_imagenet() {  # the random 64x64 images that overhead and study train on
    [ "${SMALL:-0}" = 1 ] || [ -f /tmp/imagenet64/val_data.npz ] \
        || "$PYTHON" -m benchmarks.synthetic_imagenet /tmp/imagenet64 --train-images 40000 --val-images 2000
}
for step in "${steps[@]}"; do
    case $step in
    overhead)  # the paper point at 64x64: an xsearch trial against a plain model.fit (digits with SMALL=1)
        synthetic_imagenet || exit 1
        timeout "${OVERHEAD_S:-330}" "$PYTHON" -m benchmarks.overhead "${overhead[@]}" --json "$OUT/overhead.json" \
            2>&1 | tee "$OUT/overhead.log" ;;
    throughput)  # paper point at 299x299 (71x71 with SMALL=1)
        timeout "${THROUGHPUT_S:-300}" "$PYTHON" -m benchmarks.throughput "${large[@]}" --precision mixed_bfloat16 \
            --json "$OUT/throughput.json" 2>&1 | tee "$OUT/throughput.log" ;;
    throughput64)  # paper point at imagenet-small's 64x64 (keras.applications needs 71: xsearch vs timm)
        timeout "${THROUGHPUT64_S:-220}" "$PYTHON" -m benchmarks.throughput "${small[@]}" --precision mixed_bfloat16 \
            --json "$OUT/throughput64.json" 2>&1 | tee "$OUT/throughput64.log" ;;
    spectrum)
        timeout "${SPECTRUM_S:-420}" "$PYTHON" -m benchmarks.spectrum "${spectrum[@]}" --json "$OUT/spectrum.json" \
            2>&1 | tee "$OUT/spectrum.log" ;;
    study)
        sed 's/^epochs = 10$/epochs = 3/' studies/imagenet-small.toml > /tmp/imagenet-small-3-epochs.toml
        synthetic_imagenet || exit 1
        # from outside the checkout, so that the installed xsearch (with its shipped spaces and studies) is imported
        (cd /tmp && timeout "$(( ${STUDY_S:-180} + 110 ))" "$PYTHON" -m xsearch.cli run "${study[@]}" \
            --out /tmp/xsearch-gpu-run) 2>&1 | tee "$OUT/study.log"
        cp /tmp/xsearch-gpu-run/trials.csv "$OUT/study-trials.csv" ;;
    *) echo "unknown step $step (overhead, throughput, throughput64, spectrum, study)"; exit 2 ;;
    esac
done
