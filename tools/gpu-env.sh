# Sourced by tools/gpu-smoke.sh and tools/gpu-full-tier.sh on the GPU machine (no network): make
# .gpu-bundle/ from the parts that arrived in .gpu-parts/ (if it is not there whole yet), install its
# wheels beside the machine's own packages, and point the course at the carried data.
py=${PYTHON:-python3}
if [ -f .gpu-parts/parts.json ]; then
  if ! cmp -s .gpu-parts/parts.json .gpu-bundle/.parts.json 2>/dev/null; then
    "$py" -m dlfund.course.bundle join .gpu-parts .gpu-bundle || return 1
    cp .gpu-parts/parts.json .gpu-bundle/.parts.json  # joined from these parts: no need to join again
  fi
fi
[ -d .gpu-bundle/wheels ] || { echo "no .gpu-bundle/ and no .gpu-parts/: make them with tools/gpu-bundle.sh and send them" >&2; return 2; }
"$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dlfund-site \
  .gpu-bundle/wheels/*.whl || return 1
export PYTHONPATH=/tmp/dlfund-site:$PWD PATH=/tmp/dlfund-site/bin:$PATH PYTHONUNBUFFERED=1
export DLFUND_LOCAL_DATA=$PWD/.gpu-bundle/data DLFUND_DATA_DIR=${DLFUND_DATA_DIR:-/tmp/dlfund-data}
export DLFUND_COMMIT=$(cat .gpu-bundle/COMMIT 2>/dev/null || echo unknown)
mkdir -p runs
