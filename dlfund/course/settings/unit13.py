"""Unit 13, LoRA and LLaMA-Adapter: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class LoRASettings(Settings):
    """LoRA: notebook 04."""

    targets: tuple[str, ...] = doc("projections in every attention layer that get a LoRA update")
    rank: int = doc("the LoRA rank whose results are checked against the targets (one of the ranks compared)")
    ranks: tuple[int, ...] = doc("LoRA ranks compared")
    alpha_per_rank: float = doc("LoRA scale alpha divided by the rank, so alpha / r stays the same")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rank not in self.ranks:
            raise ValueError(f"LoRASettings.rank={self.rank} must be one of the ranks compared, {self.ranks}")


@dataclass(frozen=True)
class AdapterSettings(Settings):
    """LLaMA-Adapter: notebooks 03 and 04."""

    prompt_len: int = doc("learned prompt vectors per adapted layer")
    layers: int = doc("top layers of the model that get an adapter")
    steps: int = doc("training steps of the v1 adapter in notebook 03")


@dataclass(frozen=True)
class PromptPrefixSettings(Settings):
    """Prompt tuning and prefix tuning: notebook 06."""

    prompt_len: int = doc("learned input embeddings read before every input (prompt tuning)")
    prefix_len: int = doc("learned key/value positions per key/value head in every layer (prefix tuning)")
    lr_prompt: float = doc("AdamW learning rate of prompt tuning")
    lr_prefix: float = doc("AdamW learning rate of prefix tuning")
    init_text: str = doc("text whose tokens (repeated) start the soft prompt and the prefixes")


@dataclass(frozen=True)
class MemoryProbe(Settings):
    """The batch whose peak memory is compared, notebook 04."""

    batch: int = doc("sequences in the batch whose peak training memory is measured")
    seq_len: int = doc("tokens per sequence in that batch")


@dataclass(frozen=True)
class RankStudy(Settings):
    """The rank/alpha study on a small regression problem, notebook 01."""

    dim: int = doc("inputs and outputs of the square layer being adapted")
    true_rank: int = doc("rank of the weight change the LoRA layers must learn")
    ranks: tuple[int, ...] = doc("LoRA ranks tried")
    alphas: tuple[float, ...] = doc("LoRA scales alpha tried with each rank")
    steps: int = doc("Adam steps of each fit")


@dataclass(frozen=True)
class ICLSettings(Settings):
    """In-context learning: notebook 05 and exercise 4."""

    shots: tuple[int, ...] = doc("numbers of solved training examples (shots) placed before each question, compared")
    shot_seed: int = doc("seed of the random draw of shots from the training split")
    select_k: int = doc("shots per question when similar and random shots are compared (exercise 4)")
    select_n_test: int = doc("held-out questions answered when similar and random shots are compared (exercise 4)")


@dataclass(frozen=True)
class DPOSettings(Settings):
    """Preference tuning with DPO: notebook 07."""

    tasks: tuple[str, ...] = doc("instruction tasks whose examples become preference pairs")
    n_train: int = doc("training examples: each gives one pair with a wrong and one with a padded answer")
    n_held_out: int = doc("held-out examples whose pairs measure preference accuracy")
    sft_steps: int = doc("LoRA instruction-finetuning steps that make the reference model")
    steps: int = doc("DPO steps")
    batch_pairs: int = doc("preference pairs per DPO step")
    lr: float = doc("AdamW learning rate of the DPO LoRA")
    beta: float = doc("DPO's beta: how strongly the policy is held near the reference")
    eval_every: int = doc("DPO steps between two measurements on the held-out pairs")
    n_generate: int = doc("held-out examples answered greedily before and after DPO (exact match)")
    toy_steps: int = doc("Adam steps of the toy comparison of two preference losses (exercise 6)")


@dataclass(frozen=True)
class RAGSettings(Settings):
    """Retrieval-augmented answers: notebook 08."""

    n_index: int | None = doc(
        "speeches whose first lines are embedded into the index (None: every speech of every play)"
    )
    n_recall: int = doc("questions on which retrieval recall is measured (embedding only, no generation)")
    n_questions: int = doc("of those, questions the language model answers, without and with retrieval")
    min_words: int = doc("fewest words a line must have to be asked about")
    drop_words: int = doc("words removed at random from a line to make its question (so it is not a verbatim copy)")
    drops_compared: tuple[int, ...] = doc("numbers of dropped words whose recall@k curves are compared")
    recall_ks: tuple[int, ...] = doc("the k of recall@k: is the true line among the k nearest")
    context_k: int = doc("retrieved lines (with their speakers) put into the prompt")
    max_new_tokens: int = doc("most tokens generated per answer")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_questions > self.n_recall or self.drop_words not in self.drops_compared:
            raise ValueError("RAGSettings: n_questions must be at most n_recall, and drop_words one of drops_compared")
        if self.drop_words > self.min_words - 3:
            raise ValueError("RAGSettings: a question must keep at least three words of its line")


@dataclass(frozen=True)
class Targets(Settings):
    """What the full tier must reach in notebook 04 (nothing is checked in the smoke tier)."""

    exact_match: float | None = doc("held-out exact match LoRA and both adapters must reach (None: not checked)")
    trainable_percent: float | None = doc(
        "percent of the parameters LoRA and the adapters must stay below (None: not checked)"
    )
    memory_ratio: float | None = doc(
        "LoRA's peak training memory as a share of full finetuning's, at most; GPU only (None: not checked)"
    )


@dataclass(frozen=True)
class Unit13(Settings):
    """The settings of unit 13."""

    data_seed: int = doc("seed of the generated instruction data, the same in every notebook")
    n_train: int = doc("training examples generated")
    train_subset: int | None = doc("first training examples actually trained on (None: all of them)")
    n_test: int = doc("held-out examples scored by exact match after finetuning")
    n_base_eval: int = doc("held-out examples the base model is scored on (notebook 02)")
    max_new_tokens: int = doc("most tokens generated per answer when scoring exact match")
    batch_size: int = doc("examples per training batch")
    steps: int = doc("training steps of each method compared (notebook 04)")
    warmup: int = doc("steps over which the learning rate rises linearly; then it stays constant")
    n_val_loss: int = doc("held-out examples whose response-only loss is measured before and after training")
    lr_full: float = doc("AdamW learning rate of full finetuning")
    lr_lora: float = doc("AdamW learning rate of LoRA")
    lr_adapter: float = doc("AdamW learning rate of the adapters")
    lora: LoRASettings = doc("LoRA: notebook 04.")
    adapter: AdapterSettings = doc("LLaMA-Adapter: notebooks 03 and 04.")
    memory: MemoryProbe = doc("The batch whose peak memory is compared, notebook 04.")
    prefix: PromptPrefixSettings = doc("Prompt tuning and prefix tuning: notebook 06.")
    study: RankStudy = doc("The rank/alpha study on a small regression problem, notebook 01.")
    icl: ICLSettings = doc("In-context learning: notebook 05 and exercise 4.")
    targets: Targets = doc("What the full tier must reach in notebook 04 (nothing is checked in the smoke tier).")
    dpo: DPOSettings = doc("Preference tuning with DPO: notebook 07.")
    rag: RAGSettings = doc("Retrieval-augmented answers: notebook 08.")


SMOKE = Unit13(
    data_seed=0,
    n_train=64,
    train_subset=4,
    n_test=2,
    n_base_eval=6,
    max_new_tokens=8,
    batch_size=2,
    steps=2,
    warmup=0,
    n_val_loss=4,
    lr_full=0.0001,
    lr_lora=0.002,
    lr_adapter=0.005,
    lora=LoRASettings(targets=("q_proj", "v_proj"), rank=8, ranks=(8,), alpha_per_rank=2.0),
    adapter=AdapterSettings(prompt_len=10, layers=28, steps=3),
    memory=MemoryProbe(batch=4, seq_len=512),
    prefix=PromptPrefixSettings(
        prompt_len=20, prefix_len=10, lr_prompt=0.03, lr_prefix=0.01, init_text="Answer with the exact answer only."
    ),
    study=RankStudy(dim=64, true_rank=4, ranks=(1, 2, 4, 8), alphas=(1.0, 16.0), steps=150),
    icl=ICLSettings(shots=(0, 1, 3), shot_seed=0, select_k=1, select_n_test=4),
    targets=Targets(exact_match=None, trainable_percent=None, memory_ratio=None),
    dpo=DPOSettings(
        tasks=("add", "subtract", "count"),
        n_train=2,
        n_held_out=2,
        sft_steps=2,
        steps=2,
        batch_pairs=2,
        lr=0.005,
        beta=0.1,
        eval_every=2,
        n_generate=2,
        toy_steps=200,
    ),
    rag=RAGSettings(
        n_index=120,
        n_recall=16,
        n_questions=2,
        min_words=5,
        drop_words=2,
        drops_compared=(0, 1, 2),
        recall_ks=(1, 3, 5, 10),
        context_k=2,
        max_new_tokens=4,
    ),
)

FULL = Unit13(
    data_seed=0,
    n_train=3000,
    train_subset=None,
    n_test=240,
    n_base_eval=240,
    max_new_tokens=16,
    batch_size=16,
    steps=800,
    warmup=40,
    n_val_loss=64,
    lr_full=3e-05,
    lr_lora=0.002,
    lr_adapter=0.005,
    lora=LoRASettings(targets=("q_proj", "v_proj"), rank=8, ranks=(2, 8, 16), alpha_per_rank=2.0),
    adapter=AdapterSettings(prompt_len=10, layers=28, steps=100),
    memory=MemoryProbe(batch=4, seq_len=512),
    prefix=PromptPrefixSettings(
        prompt_len=20, prefix_len=10, lr_prompt=0.03, lr_prefix=0.01, init_text="Answer with the exact answer only."
    ),
    study=RankStudy(dim=256, true_rank=4, ranks=(1, 2, 4, 8, 16), alphas=(1.0, 16.0), steps=400),
    icl=ICLSettings(shots=(0, 1, 3, 8), shot_seed=0, select_k=3, select_n_test=240),
    targets=Targets(exact_match=0.9, trainable_percent=1.0, memory_ratio=0.6),
    dpo=DPOSettings(
        tasks=("add", "subtract", "sort", "count", "reverse", "speaker"),
        n_train=600,
        n_held_out=120,
        sft_steps=150,
        steps=200,
        batch_pairs=8,
        lr=0.0005,
        beta=0.1,
        eval_every=20,
        n_generate=60,
        toy_steps=200,
    ),
    rag=RAGSettings(
        n_index=None,
        n_recall=1000,
        n_questions=200,
        min_words=6,
        drop_words=2,
        drops_compared=(0, 1, 2, 3),
        recall_ks=(1, 3, 5, 10),
        context_k=3,
        max_new_tokens=8,
    ),
)
