"""Image scorer: how well an image matches its prompt.

The scoring family is the model option "type". "clip" (the default) is a PickScore/HPS
style preference scorer on any CLIPModel: logit_scale * cos(text, image). "image-reward"
is THUDM's ImageReward (the paper's image scorer), ported onto transformers' BLIP classes
(models/image_reward.py): a directory with ImageReward.pt and med_config.json, its score
ImageReward's normalized reward; the model option "tokenizer" names its BERT tokenizer when
the directory has none (see image_reward._tokenizer_dir).
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


class ImageRewardScorer:
    """ImageReward: score = (r - mean) / std of the MLP head's raw reward r, as
    ImageReward.score returns it; components: "raw", r itself."""

    def __init__(self, ctx: WorkerContext) -> None:
        from pds_dpo_workers.models.image_reward import load_image_reward
        from pds_dpo_workers.models.spec import list_files

        resolved = resolve(ctx.spec, ctx.cache_root)
        self.model, tokenizer_dir = load_image_reward(
            resolved.directory, device=ctx.device, dtype=torch_dtype(ctx.spec, ctx.device), tokenizer=ctx.spec.options.get("tokenizer", "")
        )
        if tokenizer_dir is not None:
            # A tokenizer from elsewhere changes the scores too: its files join the fingerprint.
            for f in list_files(tokenizer_dir):
                resolved.files.append(common_pb2.WeightFile(path=f"tokenizer/{f.path}", sha256=f.sha256, bytes=f.bytes))
        self.loaded = resolved.loaded_model("ImageReward")

    def score(self, prompts: list[str], images: list) -> list[dict[str, float]]:
        raw, scores = self.model.score(prompts, images)
        return [{"score": s, "raw": r} for r, s in zip(raw, scores)]


def _features(out):
    # transformers 5 may return a model output instead of a tensor.
    return out if hasattr(out, "dim") else out.pooler_output


class ImageScorer(Kind):
    BACKENDS = {"clip": ClipPreferenceScorer, "image-reward": ImageRewardScorer}
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
