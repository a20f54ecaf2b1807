"""The unit-13 checks accept the solutions, and reject stubs, the library's own layers and typical wrong answers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from check_helpers import rejects, solution, stub
from torch import nn

from dlfund.checks import unit13
from dlfund.models.attention import merge_heads, split_heads
from dlfund.models.llama import GroupedQueryAttention, repeat_kv
from dlfund.models.transformer import apply_rope, rope_tables
from dlfund.peft.adapter import AdapterAttention
from dlfund.peft.lora import LoRALinear

# --- ex01: the LoRA layer -------------------------------------------------------------------------


def lora_variant(kind: str):
    """A learner's LoRA layer with one typical mistake."""
    if kind == "library":
        return LoRALinear
    if kind == "library_subclass":

        class Subclass(LoRALinear):  # "my" layer, all of it inherited from the library
            pass

        return Subclass

    class Wrong(nn.Linear):
        def __init__(self, in_features, out_features, *, r, alpha=1.0):
            super().__init__(in_features, out_features, bias=False)
            self.merged = False
            self.scaling = {"alpha": alpha, "no_scale": 1.0, "r_over_alpha": r / alpha}.get(kind, alpha / r)
            self.lora_A = nn.Parameter(torch.empty(r, in_features))
            self.lora_B = nn.Parameter(torch.zeros(out_features, r))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            if kind == "A_zero":
                nn.init.zeros_(self.lora_A)
            if kind == "B_random":
                nn.init.normal_(self.lora_B)
            if kind == "A_normal":
                nn.init.normal_(self.lora_A)

        def forward(self, x):
            y = F.linear(x, self.weight)
            if self.merged and kind != "double":
                return y
            return y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling

        @torch.no_grad()
        def merge(self):
            if not self.merged or kind == "not_idempotent":
                self.weight += (self.lora_B @ self.lora_A) * self.scaling
                self.merged = True

        @torch.no_grad()
        def unmerge(self):
            if self.merged:
                if kind != "no_unmerge":
                    self.weight -= (self.lora_B @ self.lora_A) * self.scaling
                self.merged = False

    return Wrong


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lora_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit13.lora_layer(solution(13, "ex01-lora-layer", "MyLoRALinear"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ LoRA layer")


def test_lora_rejects_the_library_layer() -> None:
    """The library's LoRALinear computes the right thing, but passing it in is not writing the layer."""
    rejects(unit13.lora_layer, LoRALinear, match=r"library's own dlfund.peft.lora.LoRALinear: write yours")


def test_lora_names_a_missing_merge_instead_of_crashing() -> None:
    class NoMerge(lora_variant("right")):
        merge = None  # a learner who has not written merge() yet

    rejects(unit13.lora_layer, NoMerge, match=r"has no merge\(\) method: write merge\(self\)")


def test_lora_rejects_stub() -> None:
    rejects(unit13.lora_layer, stub, match=r"is not implemented yet")


LORA_MISTAKES = [
    ("alpha", r"scaled by α instead of α/r"),
    ("no_scale", r"not scaled: multiply by α/r"),
    ("r_over_alpha", r"scaled by r/α instead of α/r"),
    ("A_zero", r"A is all zeros"),
    ("B_random", r"B should start at zero .* B was initialised randomly"),
    ("A_normal", r"A should be Kaiming-uniform"),
    ("double", r"after merge\(\) the forward pass adds ΔW twice"),
    ("not_idempotent", r"calling merge\(\) twice added ΔW twice"),
    ("no_unmerge", r"unmerge\(\) should restore W"),
    ("library", r"this is the library's own dlfund.peft.lora.LoRALinear: write yours"),
    ("library_subclass", r"this is the library's own dlfund.peft.lora.LoRALinear: write yours"),
]


@pytest.mark.parametrize(("kind", "match"), LORA_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_lora_rejects_typical_mistakes(kind: str, match: str, seed: int) -> None:
    rejects(unit13.lora_layer, lora_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kind", "match"), LORA_MISTAKES)
def test_lora_rejects_typical_mistakes_on_every_seed(kind: str, match: str) -> None:
    for seed in range(50):
        rejects(unit13.lora_layer, lora_variant(kind), match=match, seed=seed)


# --- ex02: the adapter gate -----------------------------------------------------------------------


class CallsTheLibraryAttend(GroupedQueryAttention):
    """A learner's adapter that builds its own parameters but borrows the library's attention to the prompts."""

    def __init__(self, config, prompt_len):
        super().__init__(config)
        self.adapter_prompt = nn.Parameter(torch.randn(prompt_len, config.dim))
        self.adapter_gate = nn.Parameter(torch.zeros(config.n_heads))

    attend = AdapterAttention.attend
    prompt_attention = AdapterAttention.prompt_attention


def adapter_variant(kind: str):
    if kind == "library":
        return AdapterAttention
    if kind == "library_attend":
        return CallsTheLibraryAttend

    class Wrong(GroupedQueryAttention):
        def __init__(self, config, prompt_len):
            super().__init__(config)
            self.adapter_prompt = nn.Parameter(torch.randn(prompt_len, config.dim))
            n = 1 if kind == "one_gate_param" else config.n_heads
            self.adapter_gate = nn.Parameter(torch.randn(n) if kind == "random_gate" else torch.zeros(n))
            if kind == "gate_4d":
                self.adapter_gate = nn.Parameter(torch.zeros(1, n, 1, 1))
            self.theta = config.rope_base

        def forward(self, x, rope, cache=None):
            q, k, v = self.project(x, rope)
            if cache is not None and kind != "no_cache":
                k, v = cache.append(k, v)
            groups = self.n_heads // self.n_kv_heads
            prompt = self.adapter_prompt[None].expand(x.shape[0], -1, -1)
            kp = split_heads(self.k_proj(prompt), self.n_kv_heads)
            vp = split_heads(self.v_proj(prompt), self.n_kv_heads)
            if kind == "tiled":  # key/value heads tiled 0,1,2,0,1,2 instead of repeated 0,0,1,1,2,2
                kp, vp = kp.repeat(1, groups, 1, 1), vp.repeat(1, groups, 1, 1)
            else:
                kp, vp = repeat_kv(kp, groups), repeat_kv(vp, groups)
            gate = self.adapter_gate.view(1, -1, 1, 1)
            if kind == "prompt_in_cache" and cache is not None:  # the prompts appended to the cache too
                cache.append(split_heads(self.k_proj(prompt), self.n_kv_heads)[:, :, :1], k[:, :, :1])
            if kind == "joint":
                kk = torch.cat([kp, repeat_kv(k, groups)], 2)
                vv = torch.cat([vp, repeat_kv(v, groups)], 2)
                t, n = q.shape[2], kp.shape[2]
                allowed = torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n)
                return self.o_proj(merge_heads(F.scaled_dot_product_attention(q, kk, vv, attn_mask=allowed)))
            y = self.attend(q, k, v)
            if kind == "rope":
                cos, sin = rope[0][: kp.shape[2]], rope[1][: kp.shape[2]]
                kp = apply_rope(kp, cos, sin)
            if kind == "causal":
                extra = F.scaled_dot_product_attention(q, kp, vp, is_causal=True)
            else:
                extra = F.scaled_dot_product_attention(q, kp, vp)
            if kind == "detached":
                gate = gate.detach()
            if kind == "shared":
                gate = self.adapter_gate.mean()
            if kind == "tanh":
                gate = torch.tanh(gate)
            return self.o_proj(merge_heads(y + gate * extra))

    return Wrong


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adapter_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit13.adapter_gate(solution(13, "ex02-adapter-gate", "MyAdapterAttention"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ adapter gate")


def test_adapter_rejects_the_library_layer() -> None:
    """The library's AdapterAttention computes the right thing, but passing it in is not writing it."""
    rejects(unit13.adapter_gate, AdapterAttention, match=r"library's own dlfund.peft.adapter.AdapterAttention: write")


def test_adapter_rejects_stub() -> None:
    rejects(unit13.adapter_gate, stub, match=r"is not implemented yet")


ADAPTER_MISTAKES = [
    ("random_gate", r"adapter_gate must start at zero"),
    ("one_gate_param", r"one gate per query head"),
    ("rope", r"rotated by RoPE"),
    ("causal", r"causal mask"),
    ("joint", r"share one softmax with the text"),
    ("detached", r"the gate got no gradient"),
    ("shared", r"one gate was used for all heads"),
    ("tanh", r"went through tanh"),
    ("gate_4d", r"adapter_gate should have shape \(n_heads,\) = \(6,\), found \(1, 6, 1, 1\)"),
    ("no_cache", r"the cache holds 0 positions.*ignores its cache argument"),
    ("prompt_in_cache", r"the cache holds \d+ positions.*append only the text's keys and values"),
    ("tiled", r"key/value heads were tiled .*use repeat_kv"),
    ("library", r"this is the library's own dlfund.peft.adapter.AdapterAttention: write yours"),
    ("library_attend", r"this is the library's own dlfund.peft.adapter.AdapterAttention.attend: write yours"),
]


@pytest.mark.parametrize(("kind", "match"), ADAPTER_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_adapter_rejects_typical_mistakes(kind: str, match: str, seed: int) -> None:
    rejects(unit13.adapter_gate, adapter_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kind", "match"), ADAPTER_MISTAKES)
def test_adapter_rejects_typical_mistakes_on_every_seed(kind: str, match: str) -> None:
    for seed in range(50):
        rejects(unit13.adapter_gate, adapter_variant(kind), match=match, seed=seed)


def test_rope_tables_used_by_the_check_cover_the_prompts() -> None:
    cos, _ = rope_tables(4, 8, 100000.0)
    assert cos.shape == (4, 8)


# --- ex03: LoRA for an embedding table ------------------------------------------------------------


def embedding_variant(kind: str = "none"):
    """A learner's LoRA embedding (A zero, B random, as loralib) with one typical mistake."""

    class Emb(nn.Embedding):
        def __init__(self, num_embeddings, embedding_dim, *, r, alpha=1.0, padding_idx=None):
            super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx)
            if kind != "not_frozen":
                self.weight.requires_grad_(False)
            self.merged = False
            self.scaling = {"alpha": alpha, "no_scale": 1.0}.get(kind, alpha / r)
            if kind == "A_transposed":
                self.lora_A = nn.Parameter(torch.zeros(num_embeddings, r))
            else:
                self.lora_A = nn.Parameter(torch.zeros(r, num_embeddings))
            self.lora_B = nn.Parameter(torch.randn(embedding_dim, r))
            if kind in ("padding_ignored", "padding_not_zeroed"):  # B zero, A random (as for a linear layer)
                nn.init.zeros_(self.lora_B)
                nn.init.normal_(self.lora_A)
            if kind == "both_random":
                nn.init.normal_(self.lora_A)
            if kind == "both_zero":
                nn.init.zeros_(self.lora_B)

        def forward(self, idx):
            y = F.embedding(idx, self.weight, self.padding_idx)
            if self.merged and kind != "double":
                return y
            pad = None if kind == "padding_ignored" else self.padding_idx
            if kind == "transposed_lookup":
                after_a = self.lora_A[:, idx].T
            else:
                after_a = F.embedding(idx, self.lora_A.T, pad)
            return y + after_a @ self.lora_B.T * self.scaling

        @torch.no_grad()
        def merge(self):
            if not self.merged or kind == "not_idempotent":
                delta = self.lora_B @ self.lora_A * self.scaling
                self.weight += delta if kind == "merge_no_transpose" else delta.T
                self.merged = True

        @torch.no_grad()
        def unmerge(self):
            if self.merged:
                if kind != "no_unmerge":
                    self.weight -= (self.lora_B @ self.lora_A * self.scaling).T
                self.merged = False

    return Emb


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lora_embedding_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit13.lora_embedding(solution(13, "ex03-lora-embedding", "MyLoRAEmbedding"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ LoRA embedding")


def test_lora_embedding_accepts_b_zero_with_the_padding_column_zeroed() -> None:
    """The other start (B zero, A random as for a linear layer) is right too, once A's padding column is zero."""

    class BZero(embedding_variant()):
        def __init__(self, num_embeddings, embedding_dim, *, r, alpha=1.0, padding_idx=None):
            super().__init__(num_embeddings, embedding_dim, r=r, alpha=alpha, padding_idx=padding_idx)
            with torch.no_grad():
                nn.init.zeros_(self.lora_B)
                nn.init.normal_(self.lora_A)
                self.lora_A[:, padding_idx] = 0

    for seed in range(3):
        unit13.lora_embedding(BZero, seed=seed)


def test_lora_embedding_rejects_stub() -> None:
    rejects(unit13.lora_embedding, stub, match=r"is not implemented yet")


EMBEDDING_MISTAKES = [
    ("both_random", r"both A and B start random, so ΔW = \(α/r\)·B A ≠ 0"),
    ("both_zero", r"neither A nor B gets a gradient at initialisation \(both start at zero"),
    ("alpha", r"scaled by α instead of α/r"),
    ("no_scale", r"not scaled: multiply by α/r"),
    ("not_frozen", r"the base weight is not frozen"),
    ("double", r"after merge\(\) the forward pass adds ΔW twice"),
    ("not_idempotent", r"calling merge\(\) twice added ΔW twice"),
    ("no_unmerge", r"unmerge\(\) should restore the weight"),
    ("padding_ignored", r"changed the padding token's embedding .*pass padding_idx to the lookup"),
    ("padding_not_zeroed", r"changed the padding token's embedding .*padding column of A must start at\s+zero"),
    ("transposed_lookup", r"batch and position axes swapped: A\[:, idx\] has shape"),
    ("A_transposed", r"lora_A has shape \(\d+, \d\), the transpose of \(\d, \d+\)"),
    ("merge_no_transpose", r"merge\(\) raised RuntimeError.*B A has shape \(embedding_dim, num_embeddings\)"),
]


@pytest.mark.parametrize(("kind", "match"), EMBEDDING_MISTAKES)
@pytest.mark.parametrize("seed", range(2))
@pytest.mark.filterwarnings("ignore:The use of `x.T` on tensors of dimension other than 2")
def test_lora_embedding_rejects_typical_mistakes(kind: str, match: str, seed: int) -> None:
    rejects(unit13.lora_embedding, embedding_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kind", "match"), EMBEDDING_MISTAKES)
@pytest.mark.filterwarnings("ignore:The use of `x.T` on tensors of dimension other than 2")
def test_lora_embedding_rejects_typical_mistakes_on_every_seed(kind: str, match: str) -> None:
    for seed in range(50):
        rejects(unit13.lora_embedding, embedding_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
def test_solutions_pass_on_every_seed() -> None:
    lora = solution(13, "ex01-lora-layer", "MyLoRALinear")
    adapter = solution(13, "ex02-adapter-gate", "MyAdapterAttention")
    embedding = solution(13, "ex03-lora-embedding", "MyLoRAEmbedding")
    for seed in range(200):
        unit13.lora_layer(lora, seed=seed)
        unit13.adapter_gate(adapter, seed=seed)
        unit13.lora_embedding(embedding, seed=seed)
