#!/usr/bin/env bash
# On a GPU machine without network: install .gpu-bundle/ (made by tools/gpu-bundle.sh), then run the
# full tier of the given units (or single notebooks) with --record, each under a wall-clock limit.
#
#   bash tools/gpu-full-tier.sh [--limit SECONDS] 7 14:01-confidence-intervals ...
#
# Results are written to book/results/ as usual, then packed with the run's log into one archive,
# gpu-results.tgz, in $OUT when that is set (a remote runner's output folder), else in runs/.
# Unpack it in the repository here: `tar xzf gpu-results.tgz`, check the numbers, commit book/results.
set -uo pipefail
cd "$(dirname "$0")/.."
limit=540
if [ "${1:-}" = "--limit" ]; then limit=$2; shift 2; fi
[ $# -ge 1 ] || { echo "usage: bash tools/gpu-full-tier.sh [--limit SECONDS] UNIT[:NOTEBOOK]..." >&2; exit 2; }
[ -d .gpu-bundle/wheels ] || { echo "no .gpu-bundle/: make it with tools/gpu-bundle.sh and send it along" >&2; exit 2; }

py=${PYTHON:-python3}
"$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dlfund-site \
  .gpu-bundle/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/dlfund-site:$PWD PATH=/tmp/dlfund-site/bin:$PATH PYTHONUNBUFFERED=1
export DLFUND_LOCAL_DATA=$PWD/.gpu-bundle/data DLFUND_DATA_DIR=${DLFUND_DATA_DIR:-/tmp/dlfund-data}
export DLFUND_COMMIT=$(cat .gpu-bundle/COMMIT 2>/dev/null || echo unknown)
mkdir -p runs
log=runs/gpu-full-tier.log
{
  "$py" -m dlfund.course.cli env
  start=$(date +%s)
  for item in "$@"; do
    unit=${item%%:*}; notebook=${item#*:}
    args=(run "$unit" --tier full --record)
    [ "$notebook" != "$item" ] && args+=(--notebook "$notebook")
    echo "=== dlfund ${args[*]} (limit ${limit} s)"
    timeout --signal=INT --kill-after=30 "$limit" "$py" -m dlfund.course.cli "${args[@]}"
    echo "=== exit $? after $(( $(date +%s) - start )) s in all"
  done
} 2>&1 | tee "$log"
dest=${OUT:-runs}
tar czf "$dest/gpu-results.tgz" book/results "$log"
echo "packed book/results and $log into $dest/gpu-results.tgz"
