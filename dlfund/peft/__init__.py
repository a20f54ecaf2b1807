"""Parameter-efficient finetuning (unit 13): LoRA and LLaMA-Adapter written from scratch, and the
instruction-tuning loop that compares them with full finetuning."""

from dlfund.peft.adapter import (
                   AdapterAttention,
                   ScaleBiasLinear,
                   adapter_state_dict,
                   add_adapter,
                   mark_only_adapter_trainable,
)
from dlfund.peft.lora import (
                   LoRALinear,
                   ParameterReport,
                   inject_lora,
                   load_lora,
                   lora_state_dict,
                   mark_only_lora_trainable,
                   merge_lora,
                   parameter_report,
                   save_lora,
                   unmerge_lora,
)

__all__ = [
    "AdapterAttention", "LoRALinear", "ParameterReport", "ScaleBiasLinear", "add_adapter", "adapter_state_dict",
    "inject_lora", "load_lora", "lora_state_dict", "mark_only_adapter_trainable", "mark_only_lora_trainable",
    "merge_lora", "parameter_report", "save_lora", "unmerge_lora",
]
