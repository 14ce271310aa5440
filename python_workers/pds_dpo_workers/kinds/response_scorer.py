"""Response scorer: how good an answer to a question is.

Families (model option "type"):
- "sequence-classification" (default): a reward model over the question and answer through
  its chat template, text only as in the paper (ArmoRM); models whose custom head returns
  `.score` work too: ArmoRM's checkpoint maps its class to its own modeling file (auto_map),
  which runs only with the model option trust_remote_code (see models/spec.py).
- "vlm-judge": an image-text-to-text model sees the image, the question and the answer and is
  asked whether the answer is faithful; the score is P(yes) / (P(yes) + P(no)) of its next
  token, which the paper's text-only scorer could not see.

An empty (or blank) answer fails its item with "empty_answer" unless the request sets
score_empty_answers: then it is scored like any other, as the paper's scripts did (a failed
generation became "" and was still ranked).
"""

from __future__ import annotations

import threading
from typing import Protocol

from pds_dpo_workers.errors import ModelLoadError
from pds_dpo_workers.kinds.base import Kind, WorkerContext, batches, item_error, load_image
from pds_dpo_workers.models.spec import prepare_remote_code, ran_remote_code, resolve, torch_dtype
from pds_dpo_workers.proto import common_pb2, response_scorer_pb2 as pb
from pds_dpo_workers.vlm import Vlm

JUDGE_QUESTION = (
    "Question: {question}\nAnswer: {answer}\n"
    "Is this answer accurate and faithful to the image? Reply yes or no."
)


class ScoringFamily(Protocol):
    loaded: common_pb2.LoadedModel
    needs_image: bool

    def score(self, items: list[pb.ResponseScoringItem], images: list) -> list[dict[str, float]]: ...


class SequenceClassificationScorer:
    needs_image = False

    def __init__(self, ctx: WorkerContext) -> None:
        # resolve refuses a model with code of its own (auto_map) unless the spec trusts it,
        # before transformers is even imported.
        resolved = resolve(ctx.spec, ctx.cache_root)
        remote = resolved.trust_remote_code
        if remote:
            prepare_remote_code(resolved, ctx.cache_root)
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(resolved.directory, local_files_only=True, trust_remote_code=remote)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                resolved.directory, local_files_only=True, dtype=torch_dtype(ctx.spec, ctx.device), trust_remote_code=remote
            )
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"cannot load a sequence-classification model from {resolved.directory}: {e}") from None
        self.model = self.model.to(ctx.device).eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        self.loaded = resolved.loaded_model(type(self.model).__name__, remote_code=ran_remote_code(self.model, self.tokenizer))

    def score(self, items, images) -> list[dict[str, float]]:
        import torch

        texts = [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": it.question}, {"role": "assistant", "content": it.answer}], tokenize=False
            )
            for it in items
        ]
        inputs = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        with torch.no_grad():
            out = self.model(**inputs)
        # ArmoRM-style heads return `.score`; plain heads return logits.
        values = out.score if getattr(out, "score", None) is not None else out.logits
        values = values.float().reshape(len(items), -1)[:, 0].cpu()
        return [{"score": float(v)} for v in values]


class VlmJudgeScorer(Vlm):
    needs_image = True

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        tok = self.processor.tokenizer

        def first_tokens(words):
            return {ids[0] for w in words if (ids := tok.encode(w, add_special_tokens=False))}

        yes = first_tokens(("yes", "Yes", " yes", " Yes"))
        no = first_tokens(("no", "No", " no", " No"))
        # A token that starts both words (a bare space, say) says nothing either way.
        self.yes, self.no = sorted(yes - no), sorted(no - yes)
        if not self.yes or not self.no:
            raise ModelLoadError("the judge's tokenizer cannot tell 'yes' from 'no' by their first token")

    def score(self, items, images) -> list[dict[str, float]]:
        import torch

        inputs = self.inputs(images, [JUDGE_QUESTION.format(question=it.question, answer=it.answer) for it in items])
        with torch.no_grad():
            logits = self.model(**inputs).logits[:, -1, :].float()
        probs = torch.softmax(logits, dim=-1)
        p_yes = probs[:, self.yes].sum(-1)
        p_no = probs[:, self.no].sum(-1)
        score = p_yes / (p_yes + p_no)
        return [{"score": float(s), "p_yes": float(y), "p_no": float(n)} for s, y, n in zip(score.cpu(), p_yes.cpu(), p_no.cpu())]


class ResponseScorer(Kind):
    BACKENDS = {"sequence-classification": SequenceClassificationScorer, "vlm-judge": VlmJudgeScorer}
    TITLE = "response scorer"
    backend: ScoringFamily

    def _run(self, request, emit, cancel: threading.Event) -> None:
        total = len(request.items)
        done = 0
        for chunk in batches(request.items, request.max_batch_size):
            if cancel.is_set():
                return
            ready, images = [], []
            for it in chunk:
                if not it.answer.strip() and not request.score_empty_answers:
                    # An empty answer has nothing to score; it must never look like a low score.
                    emit(pb.ResponseScorerServiceScoreResponse(score=pb.ResponseScore(id=it.id, error=item_error("empty_answer", "the answer is empty"))))
                    continue
                try:
                    images.append(load_image(self.ctx.store, it.image) if self.backend.needs_image else None)
                    ready.append(it)
                except Exception as e:  # noqa: BLE001
                    emit(pb.ResponseScorerServiceScoreResponse(score=pb.ResponseScore(id=it.id, error=item_error("invalid_image", f"{type(e).__name__}: {e}"))))
            if ready:
                try:
                    results = self.backend.score(ready, images)
                except Exception as e:  # noqa: BLE001 - the chunk fails, each item says why
                    for it in ready:
                        emit(pb.ResponseScorerServiceScoreResponse(score=pb.ResponseScore(id=it.id, error=item_error("scoring_failed", f"{type(e).__name__}: {e}"))))
                else:
                    for it, r in zip(ready, results):
                        score = r.pop("score")
                        emit(pb.ResponseScorerServiceScoreResponse(score=pb.ResponseScore(id=it.id, score=score, components=r)))
            done += len(chunk)
            emit(pb.ResponseScorerServiceScoreResponse(progress=common_pb2.Progress(done=done, total=total, unit="answers")))
