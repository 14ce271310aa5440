"""Evaluator: hallucination benchmarks on a model plus an optional LoRA adapter.

The benchmarks (POPE, Object-HalBench, AMBER, MMHal-Bench) are the benchmarks package's
modules: each reads its question file and reference files, phrases the prompts, parses an
answer and computes its metrics. Answers are greedy and batched; each streams as it is
parsed. The model family is the model option "type"; "image-text-to-text" (the default) is
the responder's.
"""

from __future__ import annotations

import io
import json
import os
import stat
import threading

from pds_dpo_workers.benchmarks import BENCHMARKS
from pds_dpo_workers.benchmarks.files import Question
from pds_dpo_workers.errors import InvalidRequest
from pds_dpo_workers.kinds.base import Kind, WorkerContext, batches, lookup
from pds_dpo_workers.proto import common_pb2, evaluator_pb2 as pb
from pds_dpo_workers.store import read_blob
from pds_dpo_workers.streaming import Cancelled
from pds_dpo_workers.vlm import Vlm


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
        unknown = sorted(set(req.references) - set(bench.ROLES))
        if unknown:
            raise InvalidRequest(f"{req.benchmark} reads no '{unknown[0]}' reference file (roles: {', '.join(bench.ROLES) or 'none'})")
        references = {role: read_blob(self.ctx.store, blob) for role, blob in req.references.items()}
        suite = bench.Suite(read_blob(self.ctx.store, req.questions), references)
        adapter_dir = self.ctx.confine(req.adapter_dir, "adapter_dir") if req.adapter_dir else ""
        with self.backend.model_for(adapter_dir) as model:
            self._answer(req, suite, model, emit, cancel)

    def _image(self, req: pb.EvaluateRequest, q: Question):
        """The question's image, decoded: inline bytes, or a file under image_root."""
        from PIL import Image

        if isinstance(q.image, bytes):
            try:
                return Image.open(io.BytesIO(q.image)).convert("RGB")
            except OSError as e:
                raise InvalidRequest(f"question {q.question_id}: its image does not decode: {e}") from None
        path = q.image if os.path.isabs(q.image) else os.path.join(req.image_root, q.image)
        real = self.ctx.confine(path, f"question {q.question_id}: image")
        try:
            if not stat.S_ISREG(os.stat(real).st_mode):  # a FIFO would block the open
                raise InvalidRequest(f"benchmark image {path}: not a regular file")
            return Image.open(real).convert("RGB")
        except OSError as e:
            raise InvalidRequest(f"benchmark image {path} (question {q.question_id}): {e}") from None

    def _answer(self, req, suite, model, emit, cancel: threading.Event) -> None:
        # The config's default (stages.evaluate.max_new_tokens), for a request that sets none.
        max_new = req.decoding.max_new_tokens or 8
        questions: list[Question] = suite.questions
        texts: list[str] = []
        lines: list[str] = []
        for chunk in batches(questions, req.max_batch_size):
            if cancel.is_set():
                raise Cancelled()
            images = [self._image(req, q) for q in chunk]
            answers = self.backend.answer(model, images, [q.prompt for q in chunk], max_new)
            for q, text in zip(chunk, answers):
                text = text.strip()
                parsed = suite.parse(len(texts), text)
                texts.append(text)
                lines.append(json.dumps({**q.record, "question_id": q.question_id, "answer": text, "parsed": parsed}, sort_keys=True) + "\n")
                emit(pb.EvaluateResponse(answer=pb.EvalAnswer(question_id=q.question_id, answer=text, parsed=parsed)))
            emit(pb.EvaluateResponse(progress=common_pb2.Progress(done=len(texts), total=len(questions), unit="questions")))
        metrics = suite.metrics(texts)
        ref = self.ctx.store.put("".join(lines).encode(), "application/jsonl") if self.ctx.store else None
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
