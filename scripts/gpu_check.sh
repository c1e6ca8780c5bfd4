#!/usr/bin/env bash
# scripts/gpu_check.sh: the GPU side of accel on a GPU machine, in one short run (fits a 10-minute limit).
#
#   1. set-up: pick the Python (below), record versions and the GPU          -> $OUT/setup.log
#   2. every Triton kernel test in Triton's interpreter (TRITON_INTERPRET=1) -> $OUT/tests_interpreter.log
#   3. the same tests natively plus the gpu-marked large-shape tests        -> $OUT/tests_native.log
#   4. accel gpu bench --json; progress, then the table                      -> $OUT/bench.json, $OUT/bench.log
#   5. the kernels' measured float error, natively                           -> $OUT/errors.json, $OUT/errors.log
#   6. accel gpu compare of the main job's step, measured                    -> $OUT/compare.json, $OUT/compare.log
#   and one line per step with its exit status                               -> $OUT/summary.txt
# (10 files: what a remote run may bring back.) The step limits add up to 580 s on a GPU machine.
#
# Which Python: $ACCEL_PYTHON if set; else the machine's python3 when its torch sees a CUDA GPU (a GPU image has
# CUDA torch and Triton but no network, so ./run's pip install cannot run there, and requirements.txt's torch is the
# CPU build); else the project's own environment (./run python, which creates .venv on first use). With the
# machine's python3 the package is used from this checkout (PYTHONPATH), nothing is installed, and pytest runs with
# --noconftest (tests/conftest.py needs the RTL tools; the GPU tests use none of its fixtures).
# $OUT defaults to build/gpu_check. Each step has its own time limit; a failed step does not stop the next.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
out=${OUT:-$here/build/gpu_check}
mkdir -p "$out"
: > "$out/summary.txt"
export PYTHONUNBUFFERED=1

if [ -n "${ACCEL_PYTHON:-}" ]; then
    py=("$ACCEL_PYTHON")
elif python3 -c "import torch, triton, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    py=(python3)
else
    py=("$here/run" python)
fi
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
jobs=$(( $(nproc) > 8 ? 8 : $(nproc) ))
tests=(tests/test_gpu_quant.py tests/test_gpu_attention.py tests/test_gpu_vector.py tests/test_gpu_roofline.py)
pytest_args=(-q -p no:cacheprovider --noconftest -n "$jobs")
setup_limit=60
[ "${py[0]}" = "$here/run" ] && setup_limit=900  # ./run may first create .venv (minutes)

step() {  # step NAME SECONDS LOG COMMAND...: run with a time limit, log stdout+stderr, record the exit status
    local name=$1 limit=$2 log=$3
    shift 3
    local t0=$SECONDS
    timeout -k 10 "$limit" bash -c '"$@"' step "$@" > "$log" 2>&1  # bash -c: the command may be a function
    local rc=$?
    echo "$name: exit $rc in $((SECONDS - t0)) s (limit $limit s)" | tee -a "$out/summary.txt"
    return $rc
}

setup() {  # setup PYTHON...
    echo "python: $*"
    "$@" -c "import sys, torch, triton, numpy; print(sys.version); print('torch', torch.__version__, \
'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); print('triton', triton.__version__); \
print('numpy', numpy.__version__); print('gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
    nvidia-smi -L 2>/dev/null || echo "nvidia-smi: none"
    git log -1 --format='commit %H %cd' 2>/dev/null || true
    date -u +"date %Y-%m-%dT%H:%M:%SZ"
}

status=0
to_json() {  # to_json FILE COMMAND...: stdout to FILE (stderr stays with the step's log)
    local file=$1
    shift
    "$@" > "$file"
}

export -f setup to_json
step setup "$setup_limit" "$out/setup.log" setup "${py[@]}" || status=1
step tests_interpreter 90 "$out/tests_interpreter.log" \
    env TRITON_INTERPRET=1 "${py[@]}" -m pytest "${pytest_args[@]}" --dist loadfile -m "triton or not gpu" \
    "${tests[@]}" || status=1
step tests_native 130 "$out/tests_native.log" \
    "${py[@]}" -m pytest "${pytest_args[@]}" --dist load -m "triton or gpu" "${tests[@]}" || status=1
if step bench 200 "$out/bench.log" to_json "$out/bench.json" "${py[@]}" -m accel.cli gpu bench --json; then
    "${py[@]}" -c "import json, sys; from accel.gpu.bench import format_result; \
print(format_result(json.load(open(sys.argv[1]))))" "$out/bench.json" >> "$out/bench.log" 2>&1
else
    status=1
fi
step errors 60 "$out/errors.log" to_json "$out/errors.json" "${py[@]}" benchmarks/gpu_kernels.py --cases 8 \
    || status=1
step compare 40 "$out/compare.log" to_json "$out/compare.json" "${py[@]}" -m accel.cli gpu compare gpt2-xl \
    --device aim-gddr6 --context 1024 --measure --json || status=1
echo "gpu_check: $([ $status = 0 ] && echo all steps passed || echo some step failed); logs in $out" \
    | tee -a "$out/summary.txt"
exit $status
