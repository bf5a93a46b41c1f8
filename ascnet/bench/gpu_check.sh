#!/usr/bin/env bash
# The GPU check: on a machine with one NVIDIA GPU and no network, installs nothing, runs the
# GPU tests, short decode measurements and the training-step benchmark, and prints one table, in under 8 minutes.
#
#   ascnet/bench/gpu_check.sh                      # on the GPU machine, DALI and PyAV installed
#   ascnet/bench/gpu_check.sh --offline .offline   # the same, DALI and PyAV from wheel bundles in .offline/
#   ascnet/bench/gpu_check.sh --cpu-rehearsal [--offline .offline]   # the same parts with the CPU backends
#
# Needs: a python with torch (CUDA), numpy, pandas, pyarrow, click, pytest, and NVIDIA DALI
# and PyAV importable: installed, or as bundles (ascnet/bench/offline.py) in the --offline folder, one
# subfolder each (part-aa, ... + SHA256SUMS + MANIFEST.txt), unpacked into $WORK/site/ and put on
# PYTHONPATH. Real clips are read from data/real-clips when present. PYTHON picks the interpreter.
# Run from a plain checkout: ascnet need not be installed. A link farm in $WORK maps ascnet/'s
# folders (ascnet.bench among them), pipelines/ and tools/ to ascnet.*, ascnet.pipelines and
# ascnet.tools as setup.py does. Every part runs under its own time limit;
# one that fails prints "FAILED: reason" and the check goes on.
set -u
cd "$(dirname "$0")/../.."  # the checkout: this script lives in ascnet/bench/
REPO=$(pwd)
REHEARSAL=""
OFFLINE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu-rehearsal) REHEARSAL="--cpu-rehearsal"; shift ;;
        --offline) OFFLINE=${2:?--offline needs a folder}; shift 2 ;;
        *) echo "unknown option $1 (allowed: --cpu-rehearsal, --offline DIR)" >&2; exit 2 ;;
    esac
done
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
export ASCNET_GPU_CHECK_WORK=${ASCNET_GPU_CHECK_WORK:-${TMPDIR:-/tmp}/ascnet-gpu-check}
WORK=$ASCNET_GPU_CHECK_WORK
mkdir -p "$WORK/shim/ascnet"
for f in "$REPO"/ascnet/*; do ln -sfn "$f" "$WORK/shim/ascnet/$(basename "$f")"; done
ln -sfn "$REPO/pipelines" "$WORK/shim/ascnet/pipelines"
ln -sfn "$REPO/tools" "$WORK/shim/ascnet/tools"
export PYTHONPATH="$WORK/shim${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
LOG="$WORK/gpu_check.log"
: >"$LOG"
START=$(date +%s)

unpack_bundles() {  # each bundle of $OFFLINE into $WORK/site/NAME, prepended to PYTHONPATH
    local b name t0
    for b in "$OFFLINE"/*/; do
        [ -f "$b/SHA256SUMS" ] || continue
        name=$(basename "$b")
        t0=$(date +%s)
        if "$PYTHON" "$REPO/ascnet/bench/offline.py" unpack "$b" "$WORK/site/$name" >>"$LOG" 2>&1; then
            echo "setup | bundle $name | unpacked in $(( $(date +%s) - t0 )) s"
            export PYTHONPATH="$WORK/site/$name:$PYTHONPATH"
        else
            echo "setup | bundle $name | FAILED: $(tail -1 "$LOG")"
        fi
    done
}

run_part() {  # name, seconds
    local out rc
    # run from $WORK: from the repository root, its ascnet/ folder would shadow the link farm
    out=$(cd "$WORK" && timeout -k 5 "$2" "$PYTHON" -m ascnet.bench.gpu_check "$1" $REHEARSAL 2>>"$LOG")
    rc=$?
    [ -n "$out" ] && echo "$out"
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "$1 | - | FAILED: over its ${2}s limit"
    elif [ $rc -ne 0 ]; then echo "$1 | - | FAILED: exit $rc (see $LOG)"; fi
}

run_tests() {
    local out rc expect=1
    [ -n "$REHEARSAL" ] && expect=0
    out=$(cd "$WORK" && ASCNET_EXPECT_GPU=$expect timeout -k 5 "$1" "$PYTHON" -m pytest -q -p no:cacheprovider \
          --import-mode=importlib --rootdir="$REPO" -c "$REPO/setup.cfg" "$REPO/tests/test_gpu.py" 2>&1)
    rc=$?
    echo "$out" >>"$LOG"
    local last
    last=$(echo "$out" | grep -E "passed|failed|skipped|error" | tail -1)
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "tests | tests/test_gpu.py | FAILED: over its ${1}s limit"
    elif [ $rc -ne 0 ]; then echo "tests | tests/test_gpu.py | FAILED: ${last:-exit $rc}"
    else echo "tests | tests/test_gpu.py | ${last}"; fi
}

{
    echo "part | what | result"
    echo "--- | --- | ---"
    [ -n "$OFFLINE" ] && unpack_bundles
    # limits add up to 460 s: with the unpacking (~30 s) the whole check stays under 8 minutes
    run_part env 40
    run_tests 110
    run_part seek 40
    run_part calls 40
    run_part threads 70
    run_part matrix 70
    run_part train 90
    echo "total | wall time | $(( $(date +%s) - START )) s (details: $LOG)"
} | tee "$WORK/gpu_check.md"
