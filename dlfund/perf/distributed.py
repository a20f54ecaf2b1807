"""Data parallelism for real (unit 11): DDP and FSDP in PyTorch, Lightning and Fabric, several processes.

Every process (a *rank*) runs this module's :func:`main`, started by ``torchrun`` (one process per GPU,
or per CPU "device" with the gloo backend). Each rank builds the same model from the same seed, takes
its share of every global batch, and after each backward pass the gradients are averaged over the
ranks, so every rank takes the same step: the one a single process would take on the whole global
batch. :func:`launch` starts the ranks from a notebook or a test (a subprocess, never a fork inside
Jupyter); :func:`reference_run` is that single process; :func:`compare` measures the difference.

The modes (``--modes``, run one after the other in the same processes):

- ``torch-ddp``: :class:`torch.nn.parallel.DistributedDataParallel` (all-reduce of gradients);
- ``fsdp``: PyTorch's ``fully_shard`` (FSDP2): each rank keeps 1/N of every parameter, gradient and
  optimizer state, gathers a block's full weights just before it runs and reduce-scatters gradients;
- ``fabric-ddp``: Lightning Fabric, ``strategy="ddp"``: the loop stays yours;
- ``lightning-ddp``: a LightningModule and ``Trainer(strategy="ddp")``;
- ``fabric-fsdp2``, ``lightning-fsdp2``: Lightning's ``ModelParallelStrategy``, in which the module shards
  itself with PyTorch's ``fully_shard`` (FSDP2) over the strategy's device mesh; runs on CPUs too;
- ``lightning-fsdp``, ``fabric-fsdp``: Lightning's FSDP strategy (``strategy="fsdp"``), which wraps
  PyTorch's first FSDP; where it cannot run (it needs a GPU) the error is written down, not hidden.

Several machines: the same command with ``torchrun --nnodes N --node_rank i --master_addr HOST``
on every node; Lightning and Fabric read the node count from torchrun's environment (see the unit's
README and its ``slurm/`` example).

Each rank writes ``<out>/<mode>.rank<r>.pt`` (the final full state dict, written atomically) and
``<out>/<mode>.rank<r>.json`` (what it measured, or the error).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.models.gpt import GPT, GPTConfig
from dlfund.perf.memory import cuda_peak_mb, state_bytes
from dlfund.text.chars import CharTokenizer, random_windows, shakespeare_corpus

__all__ = [
    "MODES",
    "DistributedResult",
    "compare",
    "free_port",
    "launch",
    "launch_failure",
    "main",
    "make_problem",
    "reference_run",
    "run_ranks",
]

MODES = (
    "torch-ddp",
    "fsdp",
    "fabric-ddp",
    "lightning-ddp",
    "fabric-fsdp2",
    "lightning-fsdp2",
    "lightning-fsdp",
    "fabric-fsdp",
)

# --------------------------------------------------------------------------------------------- problem


def make_problem(
    path: str | os.PathLike[str],
    *,
    steps: int,
    global_batch: int,
    context_length: int = 32,
    n_layers: int = 2,
    dim: int = 32,
    n_heads: int = 2,
    lr: float = 1e-3,
    seed: int = 0,
    corpus_chars: int = 100_000,
) -> dict[str, Any]:
    """Write the training problem every rank reads: a small GPT (no dropout) and ``steps`` global batches
    of Shakespeare windows in a fixed order. Returns it."""

    text = shakespeare_corpus()[0][:corpus_chars]
    tok = CharTokenizer.from_text(text)
    gen = torch.Generator().manual_seed(seed)
    x, y = random_windows(tok.encode(text), context_length, steps * global_batch, generator=gen)
    problem = {
        "model": {
            "vocab_size": tok.vocab_size,
            "context_length": context_length,
            "n_layers": n_layers,
            "dim": dim,
            "n_heads": n_heads,
            "dropout": 0.0,
        },
        "x": x.contiguous(),
        "y": y.contiguous(),
        "steps": steps,
        "global_batch": global_batch,
        "lr": lr,
        "seed": seed,
    }
    _atomic_save(problem, Path(path))
    return problem


def _model(problem: dict[str, Any]) -> nn.Module:
    torch.manual_seed(problem["seed"])  # every rank starts from the same weights
    return GPT(GPTConfig(**problem["model"]))


def _loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))


def _shard(problem: dict[str, Any], step: int, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s rows of global batch ``step``: every ``world``-th row (what DistributedSampler does)."""
    g = problem["global_batch"]
    rows = slice(step * g + rank, (step + 1) * g, world)
    return problem["x"][rows], problem["y"][rows]


def reference_run(problem: dict[str, Any], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """One process, the whole global batch per step: the state dict every rank should end with."""
    model = _model(problem).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=problem["lr"])
    for step in range(problem["steps"]):
        x, y = _shard(problem, step, 0, 1)
        opt.zero_grad(set_to_none=True)
        _loss(model(x.to(device)), y.to(device)).backward()
        opt.step()
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------ the ranks


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_json(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) state dict on the CPU; sharded DTensors are gathered from every rank."""
    out = {}
    for k, v in model.state_dict().items():
        out[k] = (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().cpu().clone()
    return out


def _gather_fsdp1(root: nn.Module) -> dict[str, torch.Tensor]:
    """The full state dict of a module wrapped in PyTorch's first FSDP (as Lightning's ``strategy="fsdp"`` does)."""
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    with FSDP.state_dict_type(
        root, StateDictType.FULL_STATE_DICT, FullStateDictConfig(offload_to_cpu=True, rank0_only=False)
    ):
        state = root.state_dict()
    return {k.removeprefix("model."): v.detach().cpu().clone() for k, v in state.items()}


def _same_layout(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> bool:
    return state.keys() == expected.keys() and all(state[k].shape == expected[k].shape for k in state)


def _memory(model: nn.Module, opt: torch.optim.Optimizer, device: torch.device) -> dict[str, Any]:
    sizes = state_bytes(model, opt)
    return {
        **{f"{k}_mb": v / 2**20 for k, v in sizes.items()},
        "state_mb": sum(sizes.values()) / 2**20,
        "cuda_peak_mb": cuda_peak_mb(device),
    }


def _plain_loop(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    problem: dict[str, Any],
    rank: int,
    world: int,
    device: torch.device,
    backward: Any = None,
) -> list[float]:
    losses = []
    for step in range(problem["steps"]):
        x, y = _shard(problem, step, rank, world)
        opt.zero_grad(set_to_none=True)
        loss = _loss(model(x.to(device)), y.to(device))
        (backward or (lambda t: t.backward()))(loss)
        opt.step()
        losses.append(loss.item())
    return losses


def _run_torch_ddp(problem: dict[str, Any], rank: int, world: int, device: torch.device) -> tuple[nn.Module, Any]:
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = _model(problem).to(device)
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(ddp.parameters(), lr=problem["lr"])
    losses = _plain_loop(ddp, opt, problem, rank, world, device)
    return model, {"losses": losses, **_memory(model, opt, device)}


def _shard_gpt(model: nn.Module, mesh: Any = None) -> nn.Module:
    """FSDP2 on a GPT: each block its own unit, then the rest (embeddings tied with the head, final norm)."""
    from torch.distributed.fsdp import fully_shard

    for block in model.layers:  # one all-gather per block: only one block's full weights at a time
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _run_fsdp(problem: dict[str, Any], rank: int, world: int, device: torch.device) -> tuple[nn.Module, Any]:
    model = _shard_gpt(_model(problem).to(device))
    opt = torch.optim.AdamW(model.parameters(), lr=problem["lr"])
    losses = _plain_loop(model, opt, problem, rank, world, device)
    return model, {"losses": losses, **_memory(model, opt, device)}


def _fabric(strategy: Any, world: int, device: torch.device) -> Any:
    from lightning.fabric import Fabric

    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    fabric = Fabric(
        accelerator="cuda" if device.type == "cuda" else "cpu",
        devices=local,
        num_nodes=world // local,
        strategy=strategy,
        precision="32-true",
    )
    fabric.launch()  # under torchrun: the processes exist already, nothing is started
    return fabric


def _run_fabric(
    strategy: str, problem: dict[str, Any], rank: int, world: int, device: torch.device
) -> tuple[nn.Module, Any]:
    if strategy == "fsdp2":
        from lightning.fabric.strategies import ModelParallelStrategy

        fabric = _fabric(
            ModelParallelStrategy(
                parallelize_fn=lambda m, mesh: _shard_gpt(m, mesh["data_parallel"]),
                data_parallel_size=world,
                tensor_parallel_size=1,
            ),
            world,
            device,
        )
    else:
        fabric = _fabric(strategy, world, device)
    model = _model(problem)
    if strategy == "fsdp2" or strategy == "fsdp":
        model = fabric.setup_module(model)
        opt = fabric.setup_optimizers(torch.optim.AdamW(model.parameters(), lr=problem["lr"]))
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=problem["lr"])
        model, opt = fabric.setup(model, opt)
    losses = _plain_loop(model, opt, problem, fabric.global_rank, fabric.world_size, fabric.device, fabric.backward)
    inner = model.module if hasattr(model, "module") else model
    measured = {"losses": losses, **_memory(inner, opt, fabric.device)}
    return inner, {**measured, "_fsdp_root": getattr(model, "_forward_module", None) if strategy == "fsdp" else None}


class _LitGPT:
    """Built lazily (importing Lightning costs seconds): a LightningModule around the problem's GPT."""

    @staticmethod
    def make(problem: dict[str, Any]) -> Any:
        import lightning.pytorch as pl

        class LitGPT(pl.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.model = _model(problem)
                self.losses: list[float] = []

            def configure_model(self) -> None:
                if self.device_mesh is not None:  # ModelParallelStrategy: shard over its data-parallel mesh
                    _shard_gpt(self.model, self.device_mesh["data_parallel"])

            def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
                loss = _loss(self.model(batch[0]), batch[1])
                self.losses.append(loss.item())
                return loss

            def configure_optimizers(self) -> torch.optim.Optimizer:
                return torch.optim.AdamW(self.parameters(), lr=problem["lr"])

        return LitGPT()


def _run_lightning(
    strategy: str, problem: dict[str, Any], rank: int, world: int, device: torch.device
) -> tuple[nn.Module, Any]:
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    lit = _LitGPT.make(problem)
    # this rank's rows of every global batch, in order; Lightning must not add a sampler of its own
    xs, ys = zip(*(_shard(problem, s, rank, world) for s in range(problem["steps"])))
    data = DataLoader(TensorDataset(torch.cat(xs), torch.cat(ys)), batch_size=problem["global_batch"] // world)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if strategy == "fsdp2":
        from lightning.pytorch.strategies import ModelParallelStrategy

        strategy = ModelParallelStrategy(data_parallel_size=world, tensor_parallel_size=1)
    trainer = pl.Trainer(
        accelerator="cuda" if device.type == "cuda" else "cpu",
        devices=local,
        num_nodes=world // local,
        strategy=strategy,
        max_steps=problem["steps"],
        precision="32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        default_root_dir=os.environ.get("DLFUND_DIST_OUT", "."),
    )
    trainer.fit(lit, data)
    opt = trainer.optimizers[0]
    return lit.model, {
        "losses": lit.losses,
        **_memory(lit.model, opt, lit.device),
        "_fsdp_root": trainer.strategy.model if strategy == "fsdp" else None,
    }


def _run_mode(mode: str, problem: dict[str, Any], rank: int, world: int, device: torch.device) -> tuple[nn.Module, Any]:
    if mode == "torch-ddp":
        return _run_torch_ddp(problem, rank, world, device)
    if mode == "fsdp":
        return _run_fsdp(problem, rank, world, device)
    if mode in ("fabric-ddp", "fabric-fsdp", "fabric-fsdp2"):
        return _run_fabric(mode.split("-")[1], problem, rank, world, device)
    if mode in ("lightning-ddp", "lightning-fsdp", "lightning-fsdp2"):
        return _run_lightning(mode.split("-")[1], problem, rank, world, device)
    raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")


def main(argv: list[str] | None = None) -> int:
    """One rank (started by torchrun): run each mode, write its state dict and measurements."""
    import torch.distributed as dist

    p = argparse.ArgumentParser(description="one rank of unit 11's data-parallel runs (start it with torchrun)")
    p.add_argument("--problem", required=True, help="the file make_problem() wrote")
    p.add_argument("--out", required=True, help="folder for <mode>.rank<r>.pt / .json")
    p.add_argument("--modes", default="torch-ddp,fsdp", help=f"comma-separated, from {', '.join(MODES)}")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = p.parse_args(argv)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    problem = torch.load(args.problem, weights_only=True)
    if problem["global_batch"] % world:
        raise SystemExit(f"global batch {problem['global_batch']} does not split over {world} ranks")
    out = Path(args.out)
    os.environ["DLFUND_DIST_OUT"] = str(out)
    for mode in args.modes.split(","):
        start = time.perf_counter()
        report: dict[str, Any] = {
            "mode": mode,
            "rank": rank,
            "world_size": world,
            "device": str(device),
            "backend": dist.get_backend(),
        }
        try:
            if use_cuda:
                torch.cuda.reset_peak_memory_stats(device)
            model, measured = _run_mode(mode, problem, rank, world, device)
            root = measured.pop("_fsdp_root", None)
            report.update(measured, ok=True, seconds=time.perf_counter() - start)
            expected = _model(problem).state_dict()
            state = _full_state(model)
            if not _same_layout(state, expected) and root is not None:
                state = _gather_fsdp1(root)
            if _same_layout(state, expected):
                _atomic_save(state, out / f"{mode}.rank{rank}.pt")
            else:
                report["state_error"] = "the final weights could not be gathered into a full state dict"
        except Exception as err:  # written down for the notebook to print; the next mode still runs
            report.update(
                ok=False,
                error=f"{type(err).__name__}: {err}".strip().splitlines()[0],
                traceback=traceback.format_exc(limit=3),
                seconds=time.perf_counter() - start,
            )
        _atomic_json(report, out / f"{mode}.rank{rank}.json")
        dist.barrier()
    dist.destroy_process_group()
    return 0


# ----------------------------------------------------------------------------------------- launching


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DistributedResult:
    """What :func:`launch` brought back: per mode, each rank's report and final state dict (the model-parallel
    launch fills the reports per demo)."""

    nproc: int
    reports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    states: dict[str, list[dict[str, torch.Tensor]]] = field(default_factory=dict)
    seconds: float = 0.0
    log: str = ""

    def ok(self, mode: str) -> bool:
        return bool(self.reports.get(mode)) and all(r.get("ok") for r in self.reports[mode])

    def error(self, mode: str) -> str | None:
        for r in self.reports.get(mode, []):
            if not r.get("ok"):
                return r.get("error", "failed")
        return None if self.reports.get(mode) else "no report written (see the log)"


def run_ranks(
    module: str,
    args: list[str],
    *,
    nproc: int,
    device: str = "cpu",
    timeout: float = 300.0,
    threads_per_rank: int = 1,
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``python -m module *args`` as ``nproc`` ranks under ``python -m torch.distributed.run`` on this machine.

    A subprocess, never a fork inside Jupyter. ``device="cpu"``: CPU processes talking over loopback (the
    module should use gloo); ``"cuda"``: one GPU per rank (NCCL). Returns the finished process (its output
    captured) and the seconds it took, process start-up included."""
    if device == "cuda" and nproc > torch.cuda.device_count():
        raise ValueError(
            f"{nproc} ranks on CUDA need {nproc} GPUs (NCCL gives each rank a GPU of its own), but this machine "
            f"has {torch.cuda.device_count()}: launch fewer ranks, or the ranks on the CPU (device='cpu')"
        )
    env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_rank), "PYTHONUNBUFFERED": "1"}
    if device == "cpu" and sys.platform.startswith("linux") and Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: talk over loopback only
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        module,
        *args,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - start


def launch_failure(returncode: int, log: str) -> RuntimeError:
    """The error to raise when the ranks wrote nothing: it names the first exception a rank printed."""
    # torchrun prefixes the ranks' lines with [rankN]:; its own ChildFailedError says nothing about the cause
    causes = re.findall(r"^(?:\[rank\d+\]:\s*)?(\S*(?:Error|Exception)\b.*)$", log, flags=re.MULTILINE)
    causes = [c for c in causes if "ChildFailedError" not in c]
    cause = f" {causes[0].strip()}" if causes else ""
    return RuntimeError(f"torchrun failed (exit {returncode}):{cause}\n{log[-3000:]}")


def launch(
    problem_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    modes: tuple[str, ...],
    nproc: int = 2,
    device: str = "cpu",
    timeout: float = 300.0,
    threads_per_rank: int = 1,
) -> DistributedResult:
    """Start ``nproc`` ranks with ``python -m torch.distributed.run`` on this machine and collect their results.

    ``device="cpu"`` uses gloo (each rank one CPU process); ``"cuda"`` one GPU per rank with NCCL.
    Raises ``RuntimeError`` with the end of the log if the launcher itself fails."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown mode(s) {bad}: expected some of {', '.join(MODES)}")
    args = ["--problem", str(problem_path), "--out", str(out), "--modes", ",".join(modes), "--device", device]
    proc, seconds = run_ranks(
        "dlfund.perf.distributed", args, nproc=nproc, device=device, timeout=timeout, threads_per_rank=threads_per_rank
    )
    result = DistributedResult(nproc=nproc, seconds=seconds, log=proc.stdout + proc.stderr)
    for mode in modes:
        files = [out / f"{mode}.rank{r}.json" for r in range(nproc)]
        if all(f.exists() for f in files):
            result.reports[mode] = [json.loads(f.read_text()) for f in files]
            if result.ok(mode) and all((out / f"{mode}.rank{r}.pt").exists() for r in range(nproc)):
                result.states[mode] = [torch.load(out / f"{mode}.rank{r}.pt", weights_only=True) for r in range(nproc)]
    if proc.returncode != 0 and not result.reports:
        raise launch_failure(proc.returncode, result.log)
    return result


def compare(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest absolute difference between two state dicts with the same keys and shapes."""
    if a.keys() != b.keys():
        raise ValueError(f"state dicts differ in keys: {sorted(set(a) ^ set(b))[:5]}")
    shapes = [k for k in a if a[k].shape != b[k].shape]
    if shapes:
        raise ValueError(
            f"state dicts differ in shapes, e.g. {shapes[0]}: {tuple(a[shapes[0]].shape)} vs "
            f"{tuple(b[shapes[0]].shape)}"
        )
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


if __name__ == "__main__":
    sys.exit(main())
