"""Image scorer: how well an image matches its prompt.

The scoring family is the model option "type". "clip" (the default) is a PickScore/HPS
style preference scorer on any CLIPModel: logit_scale * cos(text, image). An
ImageReward (BLIP) family is another entry in ImageScorer.BACKENDS; the wire contract
stays as it is.
"""

from __future__ import annotations

import threading
from typing import Protocol

from pds_dpo_workers.errors import ModelLoadError
from pds_dpo_workers.kinds.base import Kind, WorkerContext, batches, item_error, load_image
from pds_dpo_workers.models.spec import resolve, torch_dtype
from pds_dpo_workers.proto import common_pb2, image_scorer_pb2 as pb


class ScoringFamily(Protocol):
    loaded: common_pb2.LoadedModel

    def score(self, prompts: list[str], images: list) -> list[dict[str, float]]:
        """One dict per image: "score" and its named components."""


class ClipPreferenceScorer:
    def __init__(self, ctx: WorkerContext) -> None:
        from transformers import CLIPModel, CLIPProcessor

        resolved = resolve(ctx.spec, ctx.cache_root)
        try:
            model = CLIPModel.from_pretrained(resolved.directory, local_files_only=True, dtype=torch_dtype(ctx.spec, ctx.device))
            self.model = model.to(ctx.device).eval()
            self.processor = CLIPProcessor.from_pretrained(resolved.directory, local_files_only=True)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"cannot load a clip scorer from {resolved.directory}: {e}") from None
        self.device = ctx.device
        self.loaded = resolved.loaded_model(type(self.model).__name__)

    def score(self, prompts: list[str], images: list) -> list[dict[str, float]]:
        import torch

        inputs = self.processor(text=prompts, images=images, padding=True, truncation=True, return_tensors="pt").to(self.device)
        with torch.no_grad():
            img = _features(self.model.get_image_features(pixel_values=inputs["pixel_values"].to(self.model.dtype)))
            txt = _features(self.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]))
            img = torch.nn.functional.normalize(img.float(), dim=-1)
            txt = torch.nn.functional.normalize(txt.float(), dim=-1)
            cosine = (img * txt).sum(-1)
            scale = self.model.logit_scale.float().exp()
        return [
            {"score": float(scale * c), "cosine": float(c), "logit_scale": float(scale)} for c in cosine.cpu()
        ]


def _features(out):
    # transformers 5 may return a model output instead of a tensor.
    return out if hasattr(out, "dim") else out.pooler_output


class ImageScorer(Kind):
    BACKENDS = {"clip": ClipPreferenceScorer}
    TITLE = "image scorer"
    backend: ScoringFamily

    def _run(self, request, emit, cancel: threading.Event) -> None:
        total = len(request.items)
        done = 0
        for chunk in batches(request.items, request.max_batch_size):
            if cancel.is_set():
                return
            ready = []
            for item in chunk:
                try:
                    ready.append((item, load_image(self.ctx.store, item.image)))
                except Exception as e:  # noqa: BLE001 - a corrupt or missing image fails its item only
                    emit(pb.ImageScorerServiceScoreResponse(score=pb.ImageScore(id=item.id, error=item_error("invalid_image", f"{type(e).__name__}: {e}"))))
            if ready:
                results = self.backend.score([it.prompt for it, _ in ready], [img for _, img in ready])
                for (it, _), r in zip(ready, results):
                    score = r.pop("score")
                    emit(pb.ImageScorerServiceScoreResponse(score=pb.ImageScore(id=it.id, score=score, components=r)))
            done += len(chunk)
            emit(pb.ImageScorerServiceScoreResponse(progress=common_pb2.Progress(done=done, total=total, unit="images")))
