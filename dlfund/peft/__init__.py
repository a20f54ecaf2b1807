"""Parameter-efficient finetuning (unit 13): LoRA, LLaMA-Adapter, prompt and prefix tuning written from
scratch, and the instruction-tuning loop that compares them with full finetuning.

Each method decides what trains and what is saved with one function of the model
(:func:`lora_parameter_names`, :func:`adapter_parameter_names`), used by both freezing and saving
(:mod:`dlfund.peft.trainable`).
"""

from dlfund.peft.adapter import (
    AdapterAttention,
    ScaleBiasLinear,
    adapter_parameter_names,
    adapter_state_dict,
    add_adapter,
    mark_only_adapter_trainable,
)
from dlfund.peft.lora import (
    LoRALinear,
    ParameterReport,
    inject_lora,
    load_lora,
    lora_parameter_names,
    lora_state_dict,
    mark_only_lora_trainable,
    merge_lora,
    parameter_report,
    save_lora,
    unmerge_lora,
)
from dlfund.peft.prompt import (
    PrefixAttention,
    PromptTunedLlama,
    add_prefix,
    add_soft_prompt,
    prefix_parameter_names,
    prompt_parameter_names,
    prompt_state_dict,
)
from dlfund.peft.trainable import cast_frozen, state_dict_of, train_only

__all__ = [
    "AdapterAttention",
    "LoRALinear",
    "ParameterReport",
    "PrefixAttention",
    "PromptTunedLlama",
    "ScaleBiasLinear",
    "adapter_parameter_names",
    "add_adapter",
    "add_prefix",
    "add_soft_prompt",
    "adapter_state_dict",
    "cast_frozen",
    "inject_lora",
    "load_lora",
    "lora_parameter_names",
    "lora_state_dict",
    "mark_only_adapter_trainable",
    "mark_only_lora_trainable",
    "merge_lora",
    "parameter_report",
    "prefix_parameter_names",
    "prompt_parameter_names",
    "prompt_state_dict",
    "save_lora",
    "state_dict_of",
    "train_only",
    "unmerge_lora",
]
