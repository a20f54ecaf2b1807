#!/usr/bin/env bash
# On the GPU machine: every lecture and solution notebook of the course in the smoke tier, on CUDA, N at a
# time, under one wall-clock limit. Results are recorded as the `gpu-smoke` tier (book/results/<unit>/
# <notebook>.gpu-smoke.json), apart from the CPU smoke and the full tier, and packed with the log into
# gpu-results.tgz in $OUT (a remote runner's output folder) or runs/.
#
#   bash tools/gpu-smoke.sh [--limit SECONDS] [--jobs N]      # defaults: 300 s, 8 notebooks at a time
#
# Here, first: bash tools/gpu-bundle.sh all (wheels, data and weights, cut into parts that fit one call).
set -uo pipefail
cd "$(dirname "$0")/.."
limit=300 jobs=8
while [ $# -gt 0 ]; do
  case $1 in
    --limit) limit=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "usage: bash tools/gpu-smoke.sh [--limit SECONDS] [--jobs N]" >&2; exit 2 ;;
  esac
done
source tools/gpu-env.sh || exit 1
log=runs/gpu-smoke.log
{
  "$py" -m dlfund.course.cli env
  start=$(date +%s)
  timeout --signal=INT --kill-after=20 "$limit" \
    "$py" -m dlfund.course.cli run --all --tier smoke --record --jobs "$jobs"
  echo "=== exit $? after $(( $(date +%s) - start )) s"
} 2>&1 | tee "$log"
dest=${OUT:-runs}
tar czf "$dest/gpu-results.tgz" book/results "$log"
echo "packed book/results and $log into $dest/gpu-results.tgz"
