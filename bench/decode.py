"""Decode speed of a responder in-process, the reference for the same model in a worker.

    python bench/decode.py build DIR [--hidden 512 --layers 4]   a LLaVA-1.5 of the tiny one's
        architecture and tokenizer (models/tiny.py), scaled so that one token costs milliseconds
    python bench/decode.py serve WORK.json   loads the work's model once and answers the work's
        requests once untimed; then, for each line on stdin, answers them again with the Responder
        kind's own compute (`_run`) in this process and prints {"tokens", "seconds", "cpu_seconds",
        "threads"}: one process for every round, as the worker is, so that rounds interleave
        tightly and neither side pays a process start or a cold model between them

WORK.json (written by bench/decode.mjs): {"model": ModelSpec JSON, "store", "device", "cpu_threads",
"requests": [RespondRequest JSON, ...]}, the same requests the worker answers over gRPC.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def build(out_dir: str, hidden: int, layers: int) -> None:
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    from pds_dpo_workers.models import tiny

    if os.path.isfile(os.path.join(out_dir, "config.json")):
        return
    tokenizer = tiny._word_bpe_tokenizer()
    torch.manual_seed(0)
    vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=2, image_size=32, patch_size=8, projection_dim=64)
    text = tiny._tiny_llama_config(
        tokenizer, hidden_size=hidden, intermediate_size=hidden * 4, num_hidden_layers=layers, num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=1024
    )
    config = LlavaConfig(**tiny.llava_fields(tokenizer, vision, text))
    config.vision_config.model_type = "clip_vision_model"
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    # Random weights end an answer early at random: decode every token the budget allows.
    model.generation_config.suppress_tokens = [tokenizer.eos_token_id]
    model.save_pretrained(out_dir, safe_serialization=True)
    LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=tiny.LLAVA_CHAT_TEMPLATE,
    ).save_pretrained(out_dir)


def serve(path: str) -> None:
    import sys

    with open(path) as f:
        work = json.load(f)
    import torch
    from google.protobuf import json_format
    from in_process import call, load, prepare

    from pds_dpo_workers.proto import responder_pb2

    store = prepare(work)
    impl = load("responder", work["model"], store, work["store"], work.get("device", "cpu"))
    requests = [json_format.ParseDict(r, responder_pb2.RespondRequest()) for r in work["requests"]]

    def answer() -> int:
        return sum(m.response.num_tokens for req in requests for m in call(impl, req) if m.HasField("response"))

    answer()  # untimed, as the worker's first call is
    print(json.dumps({"ready": True}), flush=True)
    for _ in sys.stdin:
        t0, c0 = time.perf_counter(), time.process_time()
        tokens = answer()
        out = {"tokens": tokens, "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "threads": torch.get_num_threads()}
        print(json.dumps(out), flush=True)


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/decode.py")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("out_dir")
    b.add_argument("--hidden", type=int, default=512)
    b.add_argument("--layers", type=int, default=4)
    d = sub.add_parser("serve")
    d.add_argument("work")
    args = p.parse_args()
    if args.command == "build":
        build(args.out_dir, args.hidden, args.layers)
    else:
        serve(args.work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
