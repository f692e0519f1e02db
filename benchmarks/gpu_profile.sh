#!/usr/bin/env bash
# The distillation benchmark's `gpu` profile on a lent GPU machine, as one prepared command
# (issue 18). The device image has PyTorch, timm, tqdm, PyYAML and tensorboard but not OpenCV's
# contrib modules (ximgproc: the WLS fill of TIE-KD's dense SGBM teacher), so that one wheel
# travels with the working tree. Prepare here, once:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl \
#       "opencv-contrib-python-headless==4.10.0.84"       # 56 MB; the 5.x wheel is over 64 MiB
#
# then run `bash benchmarks/gpu_profile.sh` through the device tool with carry [".whl"] and
# timeout_s 600. The benchmark is stopped at LIMIT seconds; it saves results.json after each
# method, so a cut run still returns the methods it finished. What comes back in $OUT:
# results.json, results.md (when it finished), log.txt, gpu.txt.
#
# Here, without a GPU, `PROFILE=smoke OUT=runs/gpu_script bash benchmarks/gpu_profile.sh`
# checks the script itself.
set -uo pipefail
PROFILE=${PROFILE:-gpu}
LIMIT=${LIMIT:-540}
OUT=${OUT:-runs/gpu_profile}
RUN=$(mktemp -d /tmp/bench_XXXXXX)/run  # a fresh folder: no earlier run is touched
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
{ nvidia-smi -L 2>&1; python3 -c "import torch, cv2; print('torch', torch.__version__, 'cuda',
torch.cuda.is_available(), 'cv2', cv2.__version__, 'ximgproc', hasattr(cv2, 'ximgproc'))"; } \
    > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
timeout --signal=INT --kill-after=20 "$LIMIT" \
    python3 -m benchmarks.distillation --profile "$PROFILE" --out "$RUN" 2>&1 | tee "$OUT/log.txt"
status=${PIPESTATUS[0]}
for f in results.json results.md; do
    [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/"
done
echo "benchmark exit status $status (124 or 137: stopped at ${LIMIT} s)"
exit "$status"
