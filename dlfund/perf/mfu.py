"""Model FLOPs utilisation (MFU) of a LLaMA training step (unit 12): how much of the chip's peak we use.

MFU = (model FLOPs per token × tokens per second) / peak FLOP/s of the device.

*Model* FLOPs count only the arithmetic the model needs, not what an implementation happens to do
(recomputation, padding, optimiser): per token, a training step (forward + backward) costs

    6 · N                 for every weight matrix (2 FLOPs per multiply-add, forward 1×, backward 2×),
  + 12 · n_layers · d · T for the attention scores and their weighted sum (``q·kᵀ`` and ``softmax·v``),

with ``N`` the parameters (a tied embedding counted once: the output head is a real matmul, the
lookup is free), ``d`` the model width and ``T`` the sequence length (Chinchilla / PaLM appendix
B). A causal kernel skips half of the score matrix, but the convention counts it all.

The peak is the dense bf16 tensor-core rate from the vendor's data sheet (:data:`PEAK_BF16`);
there is no such number for a CPU, where only the achieved FLOP/s is printed.

Run ``python -m dlfund.perf.mfu`` (defaults: SmolLM2-135M, bf16 autocast, sequence 1024), or see the
``MFU`` row of ``dlfund bench``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from dlfund.models.llama import Llama, LlamaConfig
from dlfund.utils.device import pick_device, resolve_bf16
from dlfund.utils.timing import synchronize

__all__ = ["PEAK_BF16", "MFUResult", "flops_per_token", "measure_mfu", "peak_bf16_flops"]

PEAK_BF16: dict[str, float] = {
    "H100 SXM": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H200": 989e12,
    "GH200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
    "RTX 4090": 165e12,
}
"""Dense (no sparsity) bf16 tensor-core peak FLOP/s, from NVIDIA's data sheets, keyed by a part of the
name ``torch.cuda.get_device_name`` reports. An "H100" without a form factor is taken as the SXM part
("NVIDIA H100 80GB HBM3" is how the SXM card names itself)."""


def peak_bf16_flops(device: torch.device | str) -> tuple[float | None, str]:
    """``(peak FLOP/s or None, device name)`` for ``device``; ``None`` where the table has no entry (any CPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        import platform

        return None, f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_BF16, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if all(part in name for part in key.split()):
            return PEAK_BF16[key], name
    if "H100" in name:
        return PEAK_BF16["H100 SXM"], name
    return None, name


def flops_per_token(config: LlamaConfig, n_params: int, seq_len: int) -> float:
    """Training FLOPs per token: ``6·N + 12·n_layers·d·T`` (see the module docstring)."""
    return 6.0 * n_params + 12.0 * config.n_layers * config.dim * seq_len


@dataclass
class MFUResult:
    """One measurement; ``mfu`` is ``None`` where the device's peak is unknown."""

    device: str
    params: int
    batch: int
    seq_len: int
    bf16: bool
    compiled: bool
    seconds_per_step: float
    tokens_per_s: float
    flops_per_token: float
    achieved_flops: float
    peak_flops: float | None
    mfu: float | None

    def summary(self) -> str:
        lines = [
            f"device: {self.device}",
            f"model: {self.params:,} parameters; batch {self.batch} × {self.seq_len} tokens; "
            f"{'bf16 autocast' if self.bf16 else 'float32'}, {'torch.compile' if self.compiled else 'eager'}",
            f"FLOPs per token: 6·N + 12·L·d·T = {self.flops_per_token / 1e9:.3f} GFLOP",
            f"{self.seconds_per_step * 1000:.1f} ms per step, {self.tokens_per_s:,.0f} tokens/s, "
            f"achieved {self.achieved_flops / 1e12:.3f} TFLOP/s",
        ]
        if self.mfu is None:
            lines.append(
                "MFU: no peak known for this CPU"
                if self.device.startswith("CPU")
                else f"MFU: no peak known for {self.device} (add it to dlfund.perf.mfu.PEAK_BF16)"
            )
        else:
            lines.append(f"MFU: {self.mfu:.1%} of {self.peak_flops / 1e12:.0f} TFLOP/s dense bf16 peak")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def measure_mfu(
    model: Llama,
    *,
    batch: int,
    seq_len: int,
    steps: int = 10,
    warmup: int = 3,
    device: torch.device | str = "cpu",
    bf16: bool | None = None,
    compile: bool = False,
    lr: float = 1e-4,
) -> MFUResult:
    """Time ``steps`` full training steps (forward, loss, backward, AdamW) of ``model`` on random tokens.

    ``bf16=None`` uses bf16 autocast where the device supports it. ``warmup`` steps (and the compile)
    are not timed. The model's weights change (it is trained on noise): pass a model you can spare.
    """

    device = torch.device(device)
    use_bf16 = resolve_bf16(bf16, device)
    if compile and device.type != "cuda":
        print(f"torch.compile is only used on CUDA: running eagerly on {device}")
        compile = False
    if seq_len > model.config.context_length:
        raise ValueError(f"seq_len={seq_len} exceeds the model's context_length={model.config.context_length}")
    model.to(device).train()
    net = torch.compile(model) if compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=lr, fused=device.type == "cuda")
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, model.config.vocab_size, (batch, seq_len + 1), generator=gen).to(device)
    x, y = tokens[:, :-1], tokens[:, 1:]

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = net(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    n_params = model.num_parameters()
    per_token = flops_per_token(model.config, n_params, seq_len)
    tokens_per_s = batch * seq_len / seconds
    achieved = per_token * tokens_per_s
    peak, name = peak_bf16_flops(device)
    return MFUResult(
        device=name,
        params=n_params,
        batch=batch,
        seq_len=seq_len,
        bf16=use_bf16,
        compiled=compile,
        seconds_per_step=seconds,
        tokens_per_s=tokens_per_s,
        flops_per_token=per_token,
        achieved_flops=achieved,
        peak_flops=peak,
        mfu=None if peak is None else achieved / peak,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dlfund.perf.mfu", description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=None, help="sequences per step (default: 16 on CUDA, 1 on CPU)")
    p.add_argument("--seq", type=int, default=None, help="tokens per sequence (default: 1024 on CUDA, 128 on CPU)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 on CUDA, 2 on CPU)")
    p.add_argument("--no-compile", action="store_true", help="run eagerly (torch.compile is used on CUDA by default)")
    p.add_argument(
        "--tiny", action="store_true", help="a 2-layer model of SmolLM2's width instead of the full 30 layers"
    )
    args = p.parse_args(argv)
    device = pick_device()
    cuda = device.type == "cuda"
    config = LlamaConfig.smollm2_135m()
    if args.tiny:
        config = LlamaConfig(**{**config.to_dict(), "n_layers": 2})
    torch.manual_seed(0)
    model = Llama(config)  # random weights: MFU does not depend on their values
    result = measure_mfu(
        model,
        batch=args.batch or (16 if cuda else 1),
        seq_len=args.seq or (1024 if cuda else 128),
        steps=args.steps or (20 if cuda else 2),
        warmup=3 if cuda else 1,
        device=device,
        compile=cuda and not args.no_compile,
    )
    print(result.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
