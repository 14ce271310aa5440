"""Evaluator: hallucination benchmarks on a model plus an optional LoRA adapter.

Benchmark readers are pluggable (BENCHMARKS): each reads its question file, phrases the
prompt, parses an answer and computes its metrics. POPE is the first; AMBER and MMHal add
entries here. Answers are greedy and batched; each streams as it is parsed. The model
family is the model option "type"; "image-text-to-text" (the default) is the responder's.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from typing import Protocol

from pds_dpo_workers import pope
from pds_dpo_workers.errors import InvalidRequest
from pds_dpo_workers.kinds.base import Kind, WorkerContext, batches, lookup
from pds_dpo_workers.proto import common_pb2, evaluator_pb2 as pb
from pds_dpo_workers.store import read_blob
from pds_dpo_workers.streaming import Cancelled
from pds_dpo_workers.vlm import Vlm

class Benchmark(Protocol):
    def read(self, data: bytes) -> list[dict]: ...
    def prompt(self, row: dict) -> str: ...
    def parse(self, answer: str) -> str: ...
    def metrics(self, rows: list[dict], parsed: list[str]) -> dict[str, float]: ...


class Pope:
    """POPE rows: {question_id, image, text, label: yes|no}, as JSON lines or a JSON list."""

    def read(self, data: bytes) -> list[dict]:
        try:
            text = data.decode().strip()
            rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise InvalidRequest(f"POPE questions: not JSON lines or a JSON list: {e}") from None
        for i, r in enumerate(rows):
            if not isinstance(r, dict):
                raise InvalidRequest(f"POPE row {i + 1} is not a JSON object")
            missing = {"question_id", "image", "text", "label"} - set(r)
            if missing:
                raise InvalidRequest(f"POPE row {i + 1} lacks {', '.join(sorted(missing))}")
            if str(r["label"]).lower() not in ("yes", "no"):
                raise InvalidRequest(f"POPE row {i + 1}: label must be yes or no, not {r['label']!r}")
            if not isinstance(r["image"], str) or not r["image"]:
                raise InvalidRequest(f"POPE row {i + 1}: image must be a path, not {r['image']!r}")
        return rows

    def prompt(self, row: dict) -> str:
        return f"{row['text']} Answer yes or no."

    def parse(self, answer: str) -> str:
        return pope.parse_yes_no(answer)

    def metrics(self, rows: list[dict], parsed: list[str]) -> dict[str, float]:
        return pope.pope_metrics([str(r["label"]).lower() for r in rows], parsed)


BENCHMARKS: dict[str, Benchmark] = {"pope": Pope()}


class ImageTextToTextEvaluator(Vlm):
    """An image-text-to-text model, with the LoRA adapters it is evaluated with (peft)."""

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        self.adapters: dict[str, str] = {}
        self.peft = None

    def model_for(self, adapter_dir: str):
        """A context with the model to run: the base for "", else base + the LoRA adapter
        in adapter_dir (each adapter is loaded once, through peft)."""
        from contextlib import nullcontext

        from peft import PeftModel

        if not adapter_dir:
            if self.peft is None:
                return nullcontext(self.model)
            return _Disabled(self.peft)
        if not os.path.isfile(os.path.join(adapter_dir, "adapter_config.json")):
            raise InvalidRequest(f"no LoRA adapter in {adapter_dir}")
        name = self.adapters.get(adapter_dir)
        if name is None:
            name = self.adapters[adapter_dir] = f"adapter{len(self.adapters)}"
            if self.peft is None:
                self.peft = PeftModel.from_pretrained(self.model, adapter_dir, adapter_name=name).eval()
            else:
                self.peft.load_adapter(adapter_dir, adapter_name=name)
        self.peft.set_adapter(name)
        return nullcontext(self.peft)

    def answer(self, model, images: list, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy answers of `model` (from model_for) to prompts about images."""
        import torch

        inputs = self.inputs(images, prompts)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        return self.processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


class Evaluator(Kind):
    BACKENDS = {"image-text-to-text": ImageTextToTextEvaluator}
    TITLE = "evaluator"
    backend: ImageTextToTextEvaluator

    def check(self, req: pb.EvaluateRequest) -> None:
        # Paths are confined before anything touches the disk (the images, in _answer).
        if req.image_root:
            self.ctx.confine(req.image_root, "image_root")
        if req.adapter_dir:
            self.ctx.confine(req.adapter_dir, "adapter_dir")

    def _run(self, req: pb.EvaluateRequest, emit, cancel: threading.Event) -> None:
        bench = lookup(BENCHMARKS, req.benchmark, "benchmark", InvalidRequest)
        rows = bench.read(read_blob(self.ctx.store, req.questions))
        adapter_dir = self.ctx.confine(req.adapter_dir, "adapter_dir") if req.adapter_dir else ""
        with self.backend.model_for(adapter_dir) as model:
            self._answer(req, bench, rows, model, emit, cancel)

    def _answer(self, req, bench: Benchmark, rows: list[dict], model, emit, cancel: threading.Event) -> None:
        from PIL import Image

        # The config's default (stages.evaluate.max_new_tokens), for a request that sets none.
        max_new = req.decoding.max_new_tokens or 8
        parsed: list[str] = []
        answers: list[dict] = []
        for chunk in batches(rows, req.max_batch_size):
            if cancel.is_set():
                raise Cancelled()
            images = []
            for r in chunk:
                path = r["image"] if os.path.isabs(r["image"]) else os.path.join(req.image_root, r["image"])
                real = self.ctx.confine(path, f"question {r['question_id']}: image")
                try:
                    if not stat.S_ISREG(os.stat(real).st_mode):  # a FIFO would block the open
                        raise InvalidRequest(f"benchmark image {path}: not a regular file")
                    images.append(Image.open(real).convert("RGB"))
                except OSError as e:
                    raise InvalidRequest(f"benchmark image {path}: {e}") from None
            texts = self.backend.answer(model, images, [bench.prompt(r) for r in chunk], max_new)
            for r, text in zip(chunk, texts):
                p = bench.parse(text)
                parsed.append(p)
                answers.append({"question_id": r["question_id"], "answer": text.strip(), "parsed": p, "label": r["label"]})
                emit(pb.EvaluateResponse(answer=pb.EvalAnswer(question_id=str(r["question_id"]), answer=text.strip(), parsed=p)))
            emit(pb.EvaluateResponse(progress=common_pb2.Progress(done=len(parsed), total=len(rows), unit="questions")))
        metrics = bench.metrics(rows, parsed)
        blob = "".join(json.dumps(a, sort_keys=True) + "\n" for a in answers).encode()
        ref = self.ctx.store.put(blob, "application/jsonl") if self.ctx.store else None
        emit(pb.EvaluateResponse(result=pb.EvalResult(metrics=metrics, answers=ref)))


class _Disabled:
    """The peft-wrapped model with its adapters switched off: the base model again."""

    def __init__(self, peft_model) -> None:
        self.peft = peft_model
        self.ctx = None

    def __enter__(self):
        self.ctx = self.peft.disable_adapter()
        self.ctx.__enter__()
        return self.peft

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc)
