#!/usr/bin/env bash
# The GPU measurements of issue #12 in one run of at most SUITE_BUDGET seconds (default 540) on a GPU machine.
#
#   bash benchmarks/gpu/device_suite.sh            # on the GPU machine, from the repository root, $OUT set
#   DEVICE=cpu SCALE=tiny PY=.venv/bin/python INSTALL_WHEELS=0 OUT=/tmp/suite bash benchmarks/gpu/device_suite.sh
#                                                  # the CPU rehearsal: every step at toy size
#
# The GPU machine has no network: the wheels of what its image lacks (CPython 3.12, x86_64) are made beforehand
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     dask==2026.8.0 distributed==2026.8.0 zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0 \
#     mrcfile==1.5.4 gemmi==0.7.5 starfile==0.5.13 dask-jobqueue==0.9.0 partd==1.4.2 locket==1.0.0 tblib==3.2.2 \
#     zict==3.0.0 tornado==6.6.1 typer==0.28.0
# (typer 0.28 pins what the CLI was rehearsed with: 0.29 needs pydantic, which the image lacks) and the maps copied to
# .devdata/structures-10A; both folders are git-ignored and travel with the call. Here they go into $SITE first.
# Then the steps, each under its own
# time budget (a step past it is ended with all its processes and the next one starts), each logging to
# $WORK/logs/<step>.log with <step>.monitor.json beside it (wall time, peak host RSS of its process tree, peak
# GPU memory: benchmarks/gpu/monitor.py). Steps joined by '+' in STEPS run at the same time.
#   setup      benchmarks/gpu/env_check.py: versions, nvidia-smi, imports, `python -m tomocam`, a CUDA smoke test
#   cam        benchmarks/bench_cam.py: all-class Respond+Grad-CAM vs forward vs the per-class loop, CNN-2/CNN-1,
#              batch 64 and 256, float32 and bf16, channels-last and contiguous
#   explain    benchmarks/bench_explain.py: tomocam explain of a 256x928x928 tomogram, 23-class CNN-2 and the
#              pipeline's ceiling model, whole run vs forward-only tiles/s
#   localise   benchmarks/localisation_recipe.py, training stage: CNN-2/CNN-1 for heatmaps that localise
#   demo       `python -m tomocam demo`: the CLI's own path on the GPU (a Dask nanny per GPU, GPU=1,
#              CUDA_VISIBLE_DEVICES), bundled model; its tiles/ come back to compare with a CPU run
#              (benchmarks/gpu/compare_tiles.py)
#   table1     benchmarks/table1_recipe.py: Table 1 at the paper's scale (simulate 23 complexes, train, evaluate),
#              last: it takes the time left, less TABLE1_MARGIN, as its own --budget
# After every step the small results (logs, JSON, tables) are packed into $OUT/results.tar.gz and the tables
# rewritten into $OUT/summary.md (benchmarks/gpu/summarise.py), so whatever ends the run, what was measured
# comes back. The demo's tiles/ go into $OUT/demo_tiles.tar.gz; trained checkpoints into
# $OUT/checkpoints.tar.gz.part-N (15 MiB parts, at most CKPT_MAX_MIB before compression, in CKPT_ORDER's order;
# reassemble with `cat checkpoints.tar.gz.part-* | tar xz`). $OUT gets at most 7 files.
set -u
cd "$(dirname "$0")/../.." || exit 1
START=$(date +%s)

DEVICE=${DEVICE:-cuda}
SCALE=${SCALE:-full}                       # full: the GPU run; tiny: the CPU rehearsal
PY=${PY:-python3}
OUT=${OUT:-$PWD/out/gpu-suite}
WORK=${WORK:-/tmp/tomocam-suite}
SITE=${SITE:-/tmp/site}
INSTALL_WHEELS=${INSTALL_WHEELS:-1}
STRUCTURES=${STRUCTURES:-.devdata/structures-10A}
SUITE_BUDGET=${SUITE_BUDGET:-540}          # seconds for the whole suite, packing included
STEPS=${STEPS:-setup cam explain localise+demo table1}
# per-step caps (seconds); the last step, table1, gets what is left (~270 s) and passes it on as its own --budget
T_SETUP=${T_SETUP:-30} T_CAM=${T_CAM:-50} T_EXPLAIN=${T_EXPLAIN:-130} T_LOCALISE=${T_LOCALISE:-90} T_DEMO=${T_DEMO:-60}
T_TABLE1=${T_TABLE1:-330} TABLE1_MARGIN=${TABLE1_MARGIN:-40}  # the recipe's last steps end ~20-30 s after its budget
TABLE1_PARTS=${TABLE1_PARTS:-table1 shift}  # shift: only the tau-vs-shift CNN-2s (table1_recipe.py --parts)
LOCALISE_STAGE=${LOCALISE_STAGE:-train}  # train: D2's stage (a-b); all: also (c-e) on the GPU, needs T_LOCALISE ~240
CKPT_MAX_MIB=${CKPT_MAX_MIB:-57}
CKPT_ORDER=${CKPT_ORDER:-localise/cnn2.pt localise/cnn1.pt table1-work/cnn2-snr-0.1.pt table1-work/cnn2-snr-inf.pt}

LOGS=$WORK/logs
mkdir -p "$OUT" "$LOGS"
export PYTHONUNBUFFERED=1
say() { echo "[suite $(date +%T) +$(( $(date +%s) - START ))s] $*" | tee -a "$LOGS/suite.log"; }

if [ "$INSTALL_WHEELS" = 1 ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    > "$LOGS/pip-install.log" 2>&1 || say "pip install of .whl/ failed (see logs/pip-install.log)"
  export PYTHONPATH=$SITE:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi

pack() {  # small results -> $OUT/results.tar.gz, tables -> $OUT/summary.md (both rewritten after every step)
  local tmp=".tmp.$BASHPID"
  "$PY" benchmarks/gpu/summarise.py "$WORK" > "$OUT/summary.md$tmp" 2>> "$LOGS/summarise.log" \
    && mv "$OUT/summary.md$tmp" "$OUT/summary.md"
  (cd "$WORK" && find . -type f -size -4M \( -name '*.log' -o -name '*.json' -o -name '*.jsonl' -o -name '*.md' \
      -o -name '*.txt' -o -name '*.csv' -o -name '*.sh' -o -name '*.png' \) -not -path '*.zarr/*' -print0 \
    | tar --null -czf "$OUT/results.tar.gz$tmp" -T -) && mv "$OUT/results.tar.gz$tmp" "$OUT/results.tar.gz"
}

remaining() { echo $(( SUITE_BUDGET - 15 - ($(date +%s) - START) )); }  # 15 s kept for the last packing

step() {  # step NAME BUDGET COMMAND...: run under min(BUDGET, time left), monitored, logged
  local name=$1 budget=$2; shift 2
  local left; left=$(remaining)
  if [ "$left" -lt 20 ]; then
    say "$name skipped: ${left}s left"; echo "$name skipped 0 0" >> "$LOGS/steps.txt"; return
  fi
  [ "$budget" -gt "$left" ] && budget=$left
  say "$name start (budget ${budget}s): $*"
  local t0; t0=$(date +%s)
  timeout -k 15 "$budget" "$PY" benchmarks/gpu/monitor.py --json "$LOGS/$name.monitor.json" -- "$@" \
    > "$LOGS/$name.log" 2>&1
  local rc=$?
  echo "$name $rc $budget $(( $(date +%s) - t0 ))" >> "$LOGS/steps.txt"
  say "$name end rc=$rc after $(( $(date +%s) - t0 ))s"
  pack
}

# --- the steps' arguments at each scale ---------------------------------------------------------------------------
if [ "$SCALE" = full ]; then
  CAM_ARGS=(--batch 64 256 --dtype float32 bf16 --layout channels_last contiguous --models cnn2 cnn1 --repeats 5)
  EXPLAIN_ARGS=(--device "$DEVICE" --quick --shape 256 928 928 --models "cnn2,ceiling" --tmp "$WORK")
  TABLE1_ARGS=(--structures "$STRUCTURES" --out "$WORK/table1" --work "$WORK/table1-work" --device "$DEVICE"
               --parts $TABLE1_PARTS)
  # docs/localisation.md's 1200-box networks: 1200 boxes per class, CNN-1 with dropout, evaluated at stride 10
  LOCALISE_ARGS=("$LOCALISE_STAGE" "$WORK/localise" --structures "$STRUCTURES" --device "$DEVICE" -j 16 -n 1200
                 --epochs-cnn2 200 --epochs-cnn1 60 --time-limit-cnn2 0.9 --time-limit-cnn1 0.9 --dropout-cnn1 0.5)
  [ "$LOCALISE_STAGE" = all ] \
    && LOCALISE_ARGS+=(--stride 10 --runs cnn2:features.pool2 cnn1:features.pool2 cnn2:features.pool1)
  DEMO_ARGS=()
else
  CAM_ARGS=(--batch 2 --dtype float32 bf16 --layout channels_last contiguous --models cnn2 --repeats 1 --loop-repeats 0)
  EXPLAIN_ARGS=(--device "$DEVICE" --quick --shape 48 96 96 --models "cnn2,ceiling" --tmp "$WORK")
  TABLE1_ARGS=(--structures "$STRUCTURES" --out "$WORK/table1" --work "$WORK/table1-work" --device "$DEVICE"
               -n 8 --shift-n 4 --cnn1-minutes 0.05 --cnn2-minutes 0.05 --shift-epochs 1 --workers 2 --budget 1200
               --limit-factor 10 --parts $TABLE1_PARTS)
  LOCALISE_ARGS=("$LOCALISE_STAGE" "$WORK/localise" --structures "$STRUCTURES" --device "$DEVICE" -n 4 --epochs-cnn2 1
                 --epochs-cnn1 1 --jobs 2)
  DEMO_ARGS=(--size 96 --particles 8)
fi

run_step() {
  case $1 in
    setup)    step setup "$T_SETUP" "$PY" benchmarks/gpu/env_check.py --device "$DEVICE" --json "$LOGS/env.json" ;;
    cam)      step cam "$T_CAM" "$PY" benchmarks/bench_cam.py --device "$DEVICE" "${CAM_ARGS[@]}" \
                --json "$LOGS/bench_cam.jsonl" ;;
    explain)  grep -q -- '"--json"' benchmarks/bench_explain.py && EXPLAIN_ARGS+=(--json "$LOGS/bench_explain.json")
              step explain "$T_EXPLAIN" "$PY" benchmarks/bench_explain.py "${EXPLAIN_ARGS[@]}" ;;
    table1)   left=$(remaining); [ "$left" -gt "$T_TABLE1" ] && left=$T_TABLE1
              [ "$SCALE" = full ] && TABLE1_ARGS+=(--budget $(( left - TABLE1_MARGIN )))
              step table1 "$T_TABLE1" "$PY" benchmarks/table1_recipe.py "${TABLE1_ARGS[@]}" ;;
    localise) step localise "$T_LOCALISE" "$PY" benchmarks/localisation_recipe.py "${LOCALISE_ARGS[@]}" ;;
    demo)     step demo "$T_DEMO" "$PY" -m tomocam demo -o "$WORK/demo" --overwrite --no-progress "${DEMO_ARGS[@]}"
              [ -d "$WORK/demo/tomogram.zarr/tiles" ] \
                && tar -C "$WORK/demo" -czf "$OUT/demo_tiles.tar.gz" tomogram.zarr/zarr.json tomogram.zarr/tiles ;;
    *)        say "unknown step $1" ;;
  esac
}

say "suite start: DEVICE=$DEVICE SCALE=$SCALE PY=$PY WORK=$WORK OUT=$OUT steps: $STEPS"
for group in $STEPS; do
  for s in ${group//+/ }; do run_step "$s" & done
  wait
done

# checkpoints: whole files in CKPT_ORDER's order while they fit CKPT_MAX_MIB, one gzip tar cut in 15 MiB parts
picked=() total=0
for f in $CKPT_ORDER; do
  [ -f "$WORK/$f" ] || continue
  size=$(( $(stat -c %s "$WORK/$f") / 1048576 + 1 ))
  if [ $(( total + size )) -le "$CKPT_MAX_MIB" ]; then picked+=("$f"); total=$(( total + size )); fi
done
if [ ${#picked[@]} -gt 0 ]; then
  (cd "$WORK" && tar -czf - "${picked[@]}") | split -b 15M -d -a 1 - "$OUT/checkpoints.tar.gz.part-"
  say "checkpoints returned: ${picked[*]} (${total} MiB before compression)"
fi
say "suite end"
pack
ls -la "$OUT"
cat "$OUT/summary.md"
