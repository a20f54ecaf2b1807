#!/usr/bin/env bash
# Make .gpu-bundle/: what a GPU machine without network needs to run the course with tools/gpu-smoke.sh
# or tools/gpu-full-tier.sh; then cut it into .gpu-parts/, parts that each fit in one call beside the
# working tree (64 MiB in all per call). Run it HERE (it needs PyPI and a filled data cache), from the tree
# you will send.
#
#   bash tools/gpu-bundle.sh all          # wheels + every unit's datasets and weights
#   bash tools/gpu-bundle.sh 5 6 7        # wheels + the datasets of units 5, 6 and 7
#
# Send one part per call, each call carrying [".gpu-parts/parts.json", ".gpu-parts/part-00N-of-00M.bin"]
# (the parts stay in the ignored .gpu-parts/ there while the machine is held); the scripts join and verify
# them there (python -m dlfund.course.bundle check .gpu-parts says which have arrived).
#
# The GPU machine is assumed to have Python 3.12 with PyTorch (CUDA), Lightning, torchmetrics,
# matplotlib, scikit-learn, numpy, pyyaml and tqdm, but no Jupyter: the wheels of nbclient, ipykernel,
# watermark, jsonargparse and gguf, and of their needs that such an image lacks, go into the bundle.
# Datasets are the cached files, gzip-compressed (the local-folder data source reads .gz).
# Override GPU_PYTHON (3.12) or GPU_HAS (packages not to bundle) for another image.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash tools/gpu-bundle.sh all | UNIT [UNIT...]" >&2; exit 2; }
py=${PYTHON:-python3}
out=.gpu-bundle
rm -rf "$out" && mkdir -p "$out/wheels" "$out/data"

"$py" -m pip download -q --only-binary=:all: --python-version "${GPU_PYTHON:-3.12}" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 --platform any -d "$out/wheels" \
  nbclient nbformat ipykernel watermark "jsonargparse[signatures]" gguf 2>&1 | grep -v "^WARNING: Location" || true
# packages the GPU image already holds: bundling them would only shadow its own versions
has=${GPU_HAS:-"attrs certifi charset_normalizer coverage filelock fsspec idna iniconfig jinja2 markupsafe numpy
packaging pluggy psutil pygments pytest python_dateutil pyyaml requests setuptools six sympy tqdm typing_extensions
urllib3 zipp torch triton networkx mpmath"}
for wheel in "$out"/wheels/*.whl; do
  name=$(basename "$wheel" | cut -d- -f1 | tr 'A-Z-' 'a-z_')
  for skip in $has; do [ "$name" = "$skip" ] && rm "$wheel"; done
done

"$py" - "$out/data" "$@" <<'PY'
import gzip, shutil, sys
from pathlib import Path
from dlfund import data
from dlfund.course import manifest
out = Path(sys.argv[1])
units = manifest.UNITS if sys.argv[2:] == ["all"] else [manifest.get_unit(u) for u in sys.argv[2:]]
names = sorted({d for u in units for d in u.datasets})
data.fetch(names)  # fills and verifies the cache here (offline when it is already filled)
for name in names:
    ds = data.get(name)
    if not ds.files:  # bundled with scikit-learn or generated: nothing to carry
        continue
    folder = data.dataset_dir(name)
    for file in ds.files:
        target = out / name / (file + ".gz")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(folder / file, "rb") as src, gzip.open(target, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
    print(f"bundled {name}")
PY
git rev-parse --short=12 HEAD | tr -d '\n' > "$out/COMMIT"
[ -z "$(git status --porcelain --untracked-files=no)" ] || printf '+dirty' >> "$out/COMMIT"
du -sh "$out/wheels" "$out/data" "$out" | sed 's/^/size: /'
# what travels beside each part: the tracked files (and untracked ones git does not ignore)
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
"$py" -m dlfund.course.bundle split "$out" .gpu-parts --tree-mib "$(( tree / 1048576 + 1 ))"
echo "commit $(cat "$out/COMMIT"); on the GPU machine: bash tools/gpu-smoke.sh, or bash tools/gpu-full-tier.sh --priorities"
