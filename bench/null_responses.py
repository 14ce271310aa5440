"""Benchmark-only workers of the response stage's kinds that do no model work.

`--kind responder` answers every item's samples with a few words chosen by the item id's
hash; `--kind response-scorer` scores each answer by the hash of its id. The memory
benchmark runs them after bench/null_generator.py and bench/null_scorer.py, so the response
stage's records and dataset files grow with the item count while no model runs.

Never used by an experiment config: bench/ only.
usage: python bench/null_responses.py --kind responder|response-scorer [--port P] [--parent-pid PID] [--model-path P]
"""

from __future__ import annotations

import threading

from null_kinds import NullKind, context, parser, run, unit
from pds_dpo_workers.proto import responder_pb2, response_scorer_pb2

WORDS = ("a red cup stands on a wooden table near the bright window while two cats sleep on the old sofa").split()


class NullResponder(NullKind):
    TITLE = "null responder"

    def _run(self, request, emit, cancel: threading.Event) -> None:
        for item in request.items:
            for k in range(max(1, item.decoding.num_samples)):
                if cancel.is_set():
                    return
                u = unit(f"{item.id}/{k}")
                n = 4 + int(u * 12)
                text = " ".join(WORDS[(int(u * 1e6) + i * 7) % len(WORDS)] for i in range(n)) + "."
                emit(responder_pb2.RespondResponse(response=responder_pb2.GeneratedResponse(id=item.id, sample_index=k, text=text, num_tokens=n, finish_reason="stop")))


class NullResponseScorer(NullKind):
    TITLE = "null response scorer"

    def _run(self, request, emit, cancel: threading.Event) -> None:
        for item in request.items:
            if cancel.is_set():
                return
            emit(response_scorer_pb2.ResponseScorerServiceScoreResponse(score=response_scorer_pb2.ResponseScore(id=item.id, score=unit(item.id))))


def main() -> int:
    p = parser("bench:null-responses")
    p.add_argument("--kind", choices=("responder", "response-scorer"), required=True)
    a = p.parse_args()
    impl = (NullResponder if a.kind == "responder" else NullResponseScorer)(context(a))
    return run(a.kind, impl, a)


if __name__ == "__main__":
    raise SystemExit(main())
