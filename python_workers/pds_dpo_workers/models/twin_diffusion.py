"""Tiny twins of SD3 (StableDiffusion3Pipeline) and SDXL (StableDiffusionXLPipeline).

Each twin has the classes, components and file layout of its hub repo
(stabilityai/stable-diffusion-3-medium-diffusers, stabilityai/stable-diffusion-xl-base-1.0)
and the configuration values that change behaviour (latent channels, VAE scaling and
shift factors, scheduler, text-time conditioning), at toy widths. Their default sizes
differ from each other and from the SD1.5 twin's (64), so a worker that resolves "the
model's default size" is seen to read it from the pipeline it loaded:

    sd3:  transformer.sample_size 24 x vae_scale_factor 4 = 96 px (the real one: 128 x 8 = 1024)
    sdxl: unet.sample_size 40 x vae_scale_factor 2 = 80 px (the real one: 128 x 8 = 1024)

The T5 tokenizer of SD3 is a Unigram vocabulary trained on tiny._CORPUS. Unigram training
is not reproducible across processes (its scores differ in the last float bits from run to
run), so it is trained once and kept as an asset (`python -m
pds_dpo_workers.models.twin_diffusion`), which every build reads.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Callable

# tiny.py imports this module to merge BUILDERS, so its helpers are imported inside the
# builders (importing this module first must not meet a half-initialized tiny).

_T5_ASSET = os.path.join(os.path.dirname(__file__), "assets", "tiny-t5-unigram.json")
# T5's sentinels, appended after the trained pieces in reverse order as in t5-v1_1
# (<extra_id_0> has the highest id).
_T5_EXTRA_IDS = 100


def train_tiny_unigram() -> list[list]:
    """Train the toy T5 (SentencePiece-style Unigram) vocabulary: [[piece, score], ...],
    <pad>=0, </s>=1, <unk>=2 first as in T5."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    from pds_dpo_workers.models.tiny import _CORPUS

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Replace(Regex(" {2,}"), " ")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)]
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=400, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator([line for line in _CORPUS.splitlines() if line.strip()], trainer=trainer)
    return [[piece, score] for piece, score in json.loads(tok.to_str())["model"]["vocab"]]


def _t5_tokenizer():
    from transformers import T5TokenizerFast

    with open(_T5_ASSET) as f:
        vocab = [(piece, float(score)) for piece, score in json.load(f)]
    vocab += [(f"<extra_id_{i}>", 0.0) for i in range(_T5_EXTRA_IDS - 1, -1, -1)]
    return T5TokenizerFast(vocab=vocab, extra_ids=_T5_EXTRA_IDS, model_max_length=512)


def _clip_tokenizers(out_dir: str, second_pad: str):
    """The two CLIP tokenizers of SDXL and SD3: CLIP-L's, and OpenCLIP bigG's whose pad is "!"."""
    from transformers import CLIPTokenizer

    from pds_dpo_workers.models.tiny import _save_clip_tokenizer

    tok_dir = os.path.join(out_dir, "_tok")
    _save_clip_tokenizer(tok_dir)
    first = CLIPTokenizer.from_pretrained(tok_dir, local_files_only=True)
    second = CLIPTokenizer.from_pretrained(tok_dir, local_files_only=True, pad_token=second_pad)
    shutil.rmtree(tok_dir)
    return first, second


def build_sd3(out_dir: str, seed: int) -> None:
    """StableDiffusion3Pipeline like stable-diffusion-3-medium-diffusers."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from pds_dpo_workers.models.tiny import _seed_all, _text_encoder_config

    tokenizer, tokenizer_2 = _clip_tokenizers(out_dir, second_pad="!")
    tokenizer_3 = _t5_tokenizer()
    _seed_all(seed)
    clip = _text_encoder_config(len(tokenizer))
    text_encoder = CLIPTextModelWithProjection(clip)
    text_encoder_2 = CLIPTextModelWithProjection(clip)
    # d_model >= the two CLIP widths together: the pipeline pads their concatenation to it.
    t5 = T5Config(
        vocab_size=len(tokenizer_3),
        d_model=64,
        d_kv=16,
        d_ff=96,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=tokenizer_3.pad_token_id,
        eos_token_id=tokenizer_3.eos_token_id,
        decoder_start_token_id=tokenizer_3.pad_token_id,
    )
    text_encoder_3 = T5EncoderModel(t5)
    transformer = SD3Transformer2DModel(
        sample_size=24,
        patch_size=2,
        in_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=t5.d_model,
        caption_projection_dim=32,  # = heads x head dim, as 1536 = 24 x 64 in SD3-medium
        pooled_projection_dim=2 * clip.projection_dim,
        out_channels=16,
        pos_embed_max_size=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=16,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=96,
        scaling_factor=1.5305,
        shift_factor=0.0609,
        use_quant_conv=False,
        use_post_quant_conv=False,
        force_upcast=True,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )
    pipe.save_pretrained(out_dir, safe_serialization=True)


def build_sdxl(out_dir: str, seed: int) -> None:
    """StableDiffusionXLPipeline like stable-diffusion-xl-base-1.0."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from pds_dpo_workers.models.tiny import _seed_all, _text_encoder_config

    tokenizer, tokenizer_2 = _clip_tokenizers(out_dir, second_pad="!")
    _seed_all(seed)
    clip = _text_encoder_config(len(tokenizer))
    text_encoder = CLIPTextModel(clip)
    text_encoder_2 = CLIPTextModelWithProjection(clip)
    time_dim = 8
    unet = UNet2DConditionModel(
        sample_size=40,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(2, 4),
        norm_num_groups=4,
        # Both encoders' hidden states side by side (768 + 1280 = 2048 in SDXL).
        cross_attention_dim=2 * clip.hidden_size,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        # Six size/crop numbers, each embedded, plus the pooled text (6 x 256 + 1280 = 2816).
        projection_class_embeddings_input_dim=6 * time_dim + clip.projection_dim,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=80,
        scaling_factor=0.13025,
        force_upcast=True,
    )
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        interpolation_type="linear",
        use_karras_sigmas=False,
        timestep_spacing="leading",
        steps_offset=1,
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    pipe.save_pretrained(out_dir, safe_serialization=True)


BUILDERS: dict[str, Callable[[str, int], None]] = {
    "sd3": build_sd3,
    "sdxl": build_sdxl,
}


if __name__ == "__main__":
    os.makedirs(os.path.dirname(_T5_ASSET), exist_ok=True)
    with open(_T5_ASSET, "w") as f:
        json.dump(train_tiny_unigram(), f)
        f.write("\n")
    print(f"wrote {_T5_ASSET}")
