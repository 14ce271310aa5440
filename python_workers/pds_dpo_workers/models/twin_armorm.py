"""Tiny twin of a custom-code reward model like ArmoRM (RLHFlow/ArmoRM-Llama3-8B-v0.1).

The hub repository holds a Llama checkpoint whose config.json says `model_type: llama` but
maps AutoModelForSequenceClassification, through `auto_map`, to the class
LlamaForRewardModelWithGating of a modeling_custom.py shipped next to the weights: a
LlamaModel, a regression layer over several objectives (read at the last token), a gating
network over the hidden state at the end of the prompt (the token before the assistant
header), a fixed reward transform, and an output with `.score` (the gated sum), `.rewards`
and `.gating_output`. Without trust_remote_code, transformers silently loads its own
LlamaForSequenceClassification instead (a random score head): the workers refuse that.

The twin writes the same layout at toy size with seeded random weights: config.json (with
the auto_map), model.safetensors, modeling_custom.py (MODELING_CUSTOM below: our own compact
version of ArmoRM's published modeling file, written into the checkpoint as the hub
repository ships it) and a tokenizer with Llama-3's chat template and special tokens.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Callable

MODELING_FILE = "modeling_custom.py"
MODEL_CLASS = "LlamaForRewardModelWithGating"
AUTO_MAP = {"AutoModelForSequenceClassification": f"{MODELING_FILE[:-3]}.{MODEL_CLASS}"}

# Meta's Llama-3 instruct template, as ArmoRM's tokenizer_config.json carries it.
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
# ArmoRM finds the end of the prompt by this token sequence (the hub file hardcodes the
# Llama-3 ids 128009, 128006, 78191, 128007, 271); the twin stores its own ids in the config.
GATING_PATTERN_TEXT = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"

MODELING_CUSTOM = '''\
"""A reward model with a mixture-of-objectives head, after ArmoRM (RLHFlow/ArmoRM-Llama3-8B-v0.1).

Regression layer: one reward per objective, read at the last token. Gating network: weights
over the objectives, from the hidden state at the end of the prompt. Score: the gated sum
of the transformed rewards.
"""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import LlamaModel, LlamaPreTrainedModel
from transformers.utils import ModelOutput


class GatingNetwork(nn.Module):
    def __init__(self, in_features, out_features, temperature=10.0, logit_scale=1.0, hidden_dim=1024, n_hidden=3):
        super().__init__()
        self.temperature = temperature
        self.logit_scale = nn.Parameter(torch.ones(1) * logit_scale)
        dims = [in_features] + [hidden_dim] * n_hidden
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims, dims[1:])] + [nn.Linear(dims[-1], out_features)])

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        x = F.softmax(self.layers[-1](x) / self.temperature, dim=1)
        return x * self.logit_scale[0]


def find_token_for_gating(ids, pattern):
    """The last position where `pattern` starts (the end-of-turn token before the answer)."""
    for j in range(len(ids) - len(pattern), -1, -1):
        if ids[j : j + len(pattern)] == pattern:
            return j
    raise ValueError("the gating token pattern (end of the prompt) is not in the input")


@dataclass
class RewardOutput(ModelOutput):
    score: Optional[torch.FloatTensor] = None
    rewards: Optional[torch.FloatTensor] = None
    gating_output: Optional[torch.FloatTensor] = None
    prompt_embedding: Optional[torch.FloatTensor] = None
    hidden_state: Optional[torch.FloatTensor] = None


class LlamaForRewardModelWithGating(LlamaPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.num_objectives = getattr(config, "num_objectives", 19)
        self.gating_token_pattern = list(getattr(config, "gating_token_pattern", [128009, 128006, 78191, 128007, 271]))
        self.regression_layer = nn.Linear(config.hidden_size, self.num_objectives, bias=False)
        self.gating = GatingNetwork(
            config.hidden_size,
            self.num_objectives,
            temperature=getattr(config, "gating_temperature", 10.0),
            hidden_dim=getattr(config, "gating_hidden_dim", 1024),
            n_hidden=getattr(config, "gating_n_hidden", 3),
        )
        # The reward transform (identity until trained); not trained with the rest.
        self.reward_transform_matrix = nn.Parameter(torch.eye(self.num_objectives), requires_grad=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, **kwargs):
        hidden = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds
        ).last_hidden_state
        batch = torch.arange(hidden.shape[0], device=hidden.device)
        if attention_mask is not None:
            # Right padding: the last real token.
            last = attention_mask.long().sum(-1) - 1
        elif self.config.pad_token_id is not None and input_ids is not None:
            last = (torch.eq(input_ids, self.config.pad_token_id).int().argmax(-1) - 1) % input_ids.shape[-1]
        else:
            last = torch.full_like(batch, hidden.shape[1] - 1)
        hidden_state = hidden[batch, last]
        rewards = self.regression_layer(hidden_state)
        gate_at = [find_token_for_gating(ids.tolist(), self.gating_token_pattern) for ids in input_ids]
        prompt_embedding = hidden[batch, torch.tensor(gate_at, device=hidden.device)]
        gating_output = self.gating(prompt_embedding)
        score = torch.sum(gating_output * (rewards @ self.reward_transform_matrix), dim=1)
        return RewardOutput(
            score=score, rewards=rewards, gating_output=gating_output, prompt_embedding=prompt_embedding, hidden_state=hidden_state
        )
'''


def _armorm_tokenizer():
    from pds_dpo_workers.models.tiny import _word_bpe_tokenizer

    tokenizer = _word_bpe_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": LLAMA3_SPECIALS})
    tokenizer.bos_token = "<|begin_of_text|>"
    tokenizer.eos_token = "<|eot_id|>"
    tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE
    tokenizer.padding_side = "right"
    return tokenizer


def _import_modeling(path: str):
    """The checkpoint's modeling file as a module (a unique name: nothing in sys.modules)."""
    name = f"_pdsdpo_armorm_twin_{os.getpid()}_{id(path)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def _build_armorm(out_dir: str, seed: int) -> None:
    import torch

    from pds_dpo_workers.models.tiny import _seed_all, _tiny_llama_config

    tokenizer = _armorm_tokenizer()
    pattern = tokenizer.encode(GATING_PATTERN_TEXT, add_special_tokens=False)
    config = _tiny_llama_config(
        tokenizer,
        max_position_embeddings=2048,
        num_objectives=5,
        gating_token_pattern=pattern,
        gating_temperature=10.0,
        gating_hidden_dim=16,
        gating_n_hidden=2,
    )
    config.architectures = [MODEL_CLASS]
    config.auto_map = dict(AUTO_MAP)
    with open(os.path.join(out_dir, MODELING_FILE), "w") as f:
        f.write(MODELING_CUSTOM)
    cls = getattr(_import_modeling(os.path.join(out_dir, MODELING_FILE)), MODEL_CLASS)
    _seed_all(seed)
    model = cls(config)
    with torch.no_grad():
        # A trained transform is not the identity (ArmoRM's de-correlates verbosity).
        n = model.num_objectives
        model.reward_transform_matrix.copy_(torch.eye(n) + 0.1 * torch.randn(n, n))
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


BUILDERS: dict[str, Callable[[str, int], None]] = {"armorm": _build_armorm}
