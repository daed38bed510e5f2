#!/usr/bin/env bash
# The check a session with a GPU runs, as one command (issues 36 and 39): the README's test suite with
# the GPU visible (tests/test_cuda.py runs there instead of skipping), then the speed table on CUDA.
#
#     bash benchmarks/device_check.sh [all|tests|speed|compile|profile] [OUTDIR]      (from the repository root)
#
# It expects torch with CUDA, numpy, tensorboard, matplotlib, pytest and pytest-xdist installed (as on
# the device tool's H200 image, Python 3.12), and the rest of the requirements as wheels in .whl/
# (ignored by git), installed into a private directory. Fetch them once, where pip reaches PyPI:
#
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#         --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
#         gymnasium==1.4.0 farama-notifications mujoco==4.0.0 mujoco-core==4.0.0 mujoco-studio==4.0.0 glfw \
#         pyopengl websockets tyro==1.0.17 docstring-parser typeguard stable-baselines3==2.9.2
#
# What it writes to OUTDIR (default: $OUT, else device_check/): gpu.txt, tests.log, tests.xml (JUnit),
# speed.md, compile.md, profile.txt. `all` is tests and speed, at most 4 + 3.7 minutes (their time limits; on an
# H200 with 16 cores before --compile: about 3 each). `compile` (--compile against the default, at most 5 minutes)
# and `profile` (at most 5.5 minutes) are apart, for a second call.
set -uo pipefail
phase=${1:-all}
out=${2:-${OUT:-device_check}}
mkdir -p "$out"
cd "$(dirname "$0")/.."

if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "device_check.sh: cannot install the wheels of .whl/"; exit 2; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export MUJOCO_GL=${MUJOCO_GL:-disable} PYTHONUNBUFFERED=1  # no EGL there: nothing renders MuJoCo
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} > "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"

status=0
if [ "$phase" = all ] || [ "$phase" = tests ]; then
    # every core (no Ray there: its tests skip, so files need not stay on one worker); the GPU stays visible
    # -v: each result is in the log as it comes, even if the time limit cuts the run; a test over 200 s fails
    per_test=$(python3 -c "import pytest_timeout" 2>/dev/null && echo "--timeout 200")
    timeout 240 python3 -m pytest tests -p no:cacheprovider -v --tb=short -rfE -n "$(nproc)" --dist load $per_test \
        --junitxml="$out/tests.xml" > "$out/tests.log" 2>&1
    status=$?
    grep -E "^(FAILED|ERROR)|[0-9]+ (passed|failed)" "$out/tests.log" | tail -40
    echo "tests: exit code $status"
fi
if [ "$phase" = all ] || [ "$phase" = speed ]; then
    # one process at a time, then eight SAC trials sharing the GPU at once; each result is in speed.log as it comes
    timeout 220 python3 benchmarks/bench.py --device cuda sac-eager sac sac-bf16 mede-eager mede mede-sep-ant sb3-sac \
        --threads default --repeats 1 --warmup-steps 500 --steps 1200 --skip 100 --concurrent 8 sac \
        > "$out/speed.md" 2> "$out/speed.log"
    echo "speed: exit code $?"
    cat "$out/speed.md" "$out/speed.log"
fi
if [ "$phase" = compile ]; then
    # --compile beside the default, one process at a time (a -compile one compiles in its first 100 updates, not timed)
    timeout 300 python3 benchmarks/bench.py --device cuda sac sac-compile mede mede-compile \
        --threads default --repeats 1 --warmup-steps 500 --steps 1200 --skip 100 > "$out/compile.md" 2> "$out/compile.log"
    echo "compile: exit code $?"
    cat "$out/compile.md" "$out/compile.log"
fi
if [ "$phase" = profile ]; then
    # where a step's time goes on the GPU (each phase synchronised): what to speed up next
    for script in sac mede-sep-ant; do
        timeout 90 python3 benchmarks/profile_step.py --device cuda $script --steps 1000 2>&1 | grep -v "^W" | tail -10
    done | tee "$out/profile.txt"
    # the update alone: eager, CUDA graphs, torch.compile + CUDA graphs (--compile), and how far each drifts
    timeout 150 python3 benchmarks/compile_update.py --device cuda --updates 300 2>&1 | grep -v "^W" | tee -a "$out/profile.txt"
fi
exit $status
