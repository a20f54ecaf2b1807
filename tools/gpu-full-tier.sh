#!/usr/bin/env bash
# On a GPU machine without network: install .gpu-bundle/ (made by tools/gpu-bundle.sh, or joined from the
# parts in .gpu-parts/), then run the full tier of the given units, single notebooks or benchmark suites
# with --record, each under a wall-clock limit.
#
#   bash tools/gpu-full-tier.sh [--limit SECONDS] 7 14:01-confidence-intervals bench:reference ...
#   bash tools/gpu-full-tier.sh --priorities [--until SECONDS]
#
# --priorities runs the course's GPU claims in order (dlfund/course/gpu.py: `python -m dlfund.course.gpu`),
# each under its own limit and with --skip-current, so a piece already recorded for CUDA at this commit
# is skipped and each lent machine goes on where the last one stopped; --until stops starting new pieces
# once that many seconds have passed. Results are written to book/results/ as usual, then packed with the
# run's log into one archive, gpu-results.tgz, in $OUT when that is set (a remote runner's output folder),
# else in runs/. Unpack it in the repository here: `tar xzf gpu-results.tgz`, check the numbers, commit.
set -uo pipefail
cd "$(dirname "$0")/.."
limit=540 until= priorities=
items=()
while [ $# -gt 0 ]; do
  case $1 in
    --limit) limit=$2; shift 2 ;;
    --until) until=$2; shift 2 ;;
    --priorities) priorities=1; shift ;;
    -*) echo "usage: bash tools/gpu-full-tier.sh [--limit S] ITEM... | --priorities [--until S]" >&2; exit 2 ;;
    *) items+=("$1"); shift ;;
  esac
done
[ -n "$priorities" ] || [ ${#items[@]} -ge 1 ] || { echo "give UNIT[:NOTEBOOK], bench:SUITE or --priorities" >&2; exit 2; }
source tools/gpu-env.sh || exit 1
if [ -n "$priorities" ]; then
  mapfile -t plan < <("$py" -m dlfund.course.gpu) || exit 1  # "ITEM LIMIT" per line, in order
else
  plan=(); for item in "${items[@]}"; do plan+=("$item $limit"); done
fi
log=runs/gpu-full-tier.log
{
  "$py" -m dlfund.course.cli env
  start=$(date +%s)
  for line in "${plan[@]}"; do
    item=${line% *}; piece_limit=${line##* }
    if [ -n "$until" ] && [ $(( $(date +%s) - start + piece_limit )) -gt "$until" ]; then
      echo "=== $item not started: its limit of ${piece_limit} s would end after --until ${until} s"; continue
    fi
    unit=${item%%:*}; name=${item#*:}
    if [ "$unit" = bench ]; then
      args=(bench --suite "$name" --tier full --record)
    else
      args=(run "$unit" --tier full --record)
      [ -n "$priorities" ] && args+=(--skip-current)
      [ "$name" != "$item" ] && args+=(--notebook "$name")
    fi
    echo "=== dlfund ${args[*]} (limit ${piece_limit} s)"
    timeout --signal=INT --kill-after=30 "$piece_limit" "$py" -m dlfund.course.cli "${args[@]}"
    echo "=== exit $? after $(( $(date +%s) - start )) s in all"
  done
} 2>&1 | tee "$log"
dest=${OUT:-runs}
tar czf "$dest/gpu-results.tgz" book/results "$log"
echo "packed book/results and $log into $dest/gpu-results.tgz"
