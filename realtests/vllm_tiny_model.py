"""Write a tiny random-weight Llama and its tokenizer to a folder, offline (run by the vLLM lab's own venv).

usage: python vllm_tiny_model.py OUT_DIR NAME   (prints its figures as JSON)

No PyPI package ships a tiny model and nothing may come from a model hub, so both halves are made here: a byte-level
BPE tokenizer trained with ``tokenizers`` on the sentences below, wrapped by ``transformers`` with a chat template
(vLLM's /v1/chat/completions needs one), and a two-layer Llama with random weights (seeded). Head dimension 64:
vLLM's CPU attention refuses 16.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CORPUS = [
    "hello from the agent platform, a model served by vllm behind the gateway",
    "each tenant key is granted the models its team may use, and spend is recorded per token",
    "the quick brown fox jumps over the lazy dog while the queue of waiting requests grows",
    "say hi, count to ten, and tell me what the weather is like on the sandbox nodes",
]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def main(out: Path, name: str) -> None:
    start = time.monotonic()
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    fast.name_or_path = name
    fast.save_pretrained(out)

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=2048,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    parameters = sum(p.numel() for p in model.parameters())
    size = sum(f.stat().st_size for f in out.iterdir())
    figures = {"parameters": parameters, "vocab": len(fast), "bytes": size, "in_process_s": time.monotonic() - start}
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
