"""Tiny twin of a text-only chat LLM (LlamaForCausalLM: Llama-2/3, Vicuna, ...), the family
of a text judge such as MMHal-Bench's (the paper scores with GPT-4, a text model reading the
image contents from the template).

A two-layer Llama over the project's word-level BPE tokenizer (tiny.py), with a chat
template over plain string turns; the responder loads it as `type: text-generation`
through AutoModelForCausalLM and AutoTokenizer, as it would a hub checkpoint.
"""

from __future__ import annotations

from typing import Callable

# "USER: {question} ASSISTANT: {answer}</s>", turns of plain text.
TEXT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}{{ message['content'] }}"
    "{% if message['role'] == 'user' %} {% else %}</s>{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def _build_llama(out_dir: str, seed: int) -> None:
    from transformers import LlamaForCausalLM

    from pds_dpo_workers.models.tiny import _seed_all, _tiny_llama_config, _word_bpe_tokenizer

    tokenizer = _word_bpe_tokenizer()
    tokenizer.chat_template = TEXT_CHAT_TEMPLATE
    _seed_all(seed)
    # 8192 positions: MMHal-Bench's rubric prompt (about 4,850 tokens here) fits a judge.
    model = LlamaForCausalLM(_tiny_llama_config(tokenizer, max_position_embeddings=8192))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


BUILDERS: dict[str, Callable[[str, int], None]] = {"llama": _build_llama}
