#!/usr/bin/env bash
# Unit 11: the data-parallel worker on several nodes with torchrun. Run it on every node, with the same
# MASTER_ADDR and NNODES and this node's NODE_RANK (0 on the node whose address is MASTER_ADDR):
#
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 bash units/11-fast-training/multinode/torchrun-nodes.sh   # on node0
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=node0 bash units/11-fast-training/multinode/torchrun-nodes.sh   # on node1
#
# SHARED must be a folder every node sees (the problem file is read by every rank, results are written there).
set -euo pipefail
: "${NNODES:?set NNODES, the number of nodes}"
: "${NODE_RANK:?set NODE_RANK, the index of this node from 0}"
: "${MASTER_ADDR:?set MASTER_ADDR, the address of node 0}"
MASTER_PORT="${MASTER_PORT:-29500}"
GPUS_PER_NODE="${GPUS_PER_NODE:-$(python -c 'import torch; print(max(torch.cuda.device_count(), 1))')}"
SHARED="${SHARED:-runs/multinode}"
MODES="${MODES:-torch-ddp,fsdp,fabric-ddp,lightning-ddp,lightning-fsdp2}"
mkdir -p "$SHARED/out"

if [ "$NODE_RANK" = 0 ] && [ ! -f "$SHARED/problem.pt" ]; then
    python -c "from dlfund.perf.distributed import make_problem; make_problem('$SHARED/problem.pt', steps=20, global_batch=$((8 * NNODES * GPUS_PER_NODE)), context_length=256, n_layers=6, dim=384, n_heads=6)"
fi
while [ ! -f "$SHARED/problem.pt" ]; do sleep 1; done   # the other nodes wait for node 0's file

torchrun --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$GPUS_PER_NODE" \
    --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
    -m dlfund.perf.distributed --problem "$SHARED/problem.pt" --out "$SHARED/out" --modes "$MODES"

if [ "$NODE_RANK" = 0 ]; then
    python - "$SHARED/out" "$MODES" <<'PY'
import json, sys
from pathlib import Path
out, modes = Path(sys.argv[1]), sys.argv[2].split(",")
for mode in modes:
    reports = [json.loads(p.read_text()) for p in sorted(out.glob(f"{mode}.rank*.json"))]
    ok = all(r["ok"] for r in reports)
    print(f"{mode}: {len(reports)} ranks, {'ok' if ok else 'failed'}, state {reports[0].get('state_mb', float('nan')):.1f} MB per rank")
PY
fi
