"""Hallucination benchmarks, one module each: reading the official files (every row checked,
errors naming the file, row and field), the prompts, the answers' parsing and the metrics.

Each module has ROLES (the reference files it reads, by EvaluateRequest.references role) and
a Suite(questions, references) with .questions (files.Question), .parse(k, answer) (the
answer as the benchmark reads it, for the answers file) and .metrics(answers).
"""

from __future__ import annotations

from pds_dpo_workers.benchmarks import amber, mmhal, object_halbench, pope

# EvaluateRequest.benchmark -> its module ("pope" serves the control plane's smoke-pope too).
BENCHMARKS = {"pope": pope, "object-halbench": object_halbench, "amber": amber, "mmhal": mmhal}
