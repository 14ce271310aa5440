"""AMBER: generative (CHAIR, Cover, Hal, Cog) and discriminative (accuracy, precision, recall,
F1) hallucination metrics, ported from junyangwang0410/AMBER's inference.py.

Files, all AMBER's own: a query file (data/query/query_all.json or one of the other
query_*.json: a JSON list of {id, image, query}), data/annotations.json (a JSON list of {id,
type, truth, hallu}; generative entries give lists of object words, the others "yes" or
"no"), data/relation.json (object word -> associated words) and data/safe_words.txt (a word
a line). The prompt is the query as it stands.

Generative: the response's object words are those on AMBER's vocabulary (relation.json's
words and their associations); a safe word is ignored, a word among the image's truth
objects or their associations covers that object, any other is hallucinated (and one among
the hallu objects or their associations counts toward Cog). CHAIR = hallucinated words over
object words, Cover = covered truth objects over truth objects, Hal = share of responses
with a hallucinated word, Cog = hallu objects named over hallu objects. Discriminative: the
answer's first word, "yes" or "no" in any case, is the prediction (AMBER compares with "Yes"
and "No" exactly); "no" is the positive class. Metrics are fractions (AMBER prints them x100,
rounded to one decimal).

Departures, because spaCy's en_core_web_lg and NLTK's tagger cannot be installed here: every
token of the response (words.py's tokenizer and singularizer for NLTK's and WordNet's) is
matched against the vocabulary, where AMBER takes only the tokens tagged as nouns; AMBER's
last resort, a word-vector similarity above 0.8 to a truth or hallu word, is not made, so a
vocabulary word that is neither safe nor an exact truth word or association counts as
hallucinated. F1 has no 1e-4 in its denominator.
"""

from __future__ import annotations

import re

from pds_dpo_workers.benchmarks.files import Question, json_document, json_list, need, ratio, reference, string_list, yes_no_counts
from pds_dpo_workers.benchmarks.words import caption_words
from pds_dpo_workers.errors import InvalidRequest

NAME = "AMBER queries"
ROLES = ("annotations", "relation", "safe_words")

# Annotation type -> the dimension its discriminative metrics are reported under.
DIMENSIONS = {
    "discriminative-hallucination": ("existence",),
    "discriminative-attribute-state": ("attribute", "state"),
    "discriminative-attribute-number": ("attribute", "number"),
    "discriminative-attribute-action": ("attribute", "action"),
    "discriminative-relation": ("relation",),
    "relation": ("relation",),
}
TYPES = ("generative", *DIMENSIONS)


class Vocabulary:
    """relation.json and safe_words.txt."""

    def __init__(self, relation: dict[str, list[str]], safe_words: list[str]) -> None:
        self.association = relation
        self.words = {w for k, v in relation.items() for w in (k, *v)}
        self.safe = set(safe_words)


def _owners(objects: list[str], association: dict[str, list[str]]) -> list[tuple[str, int]]:
    """AMBER's search list for an image's objects: every object's associations, then the
    objects themselves, each word with the index of the object it stands for."""
    assoc = [(w, i) for i, obj in enumerate(objects) for w in association[obj]]
    return assoc + [(obj, i) for i, obj in enumerate(objects)]


def _first(words: list[tuple[str, int]], word: str) -> int | None:
    return next((i for w, i in words if w == word), None)


def generative_counts(response: str, truth: list[str], hallu: list[str], vocab: Vocabulary) -> dict[str, int]:
    """One response's counts: object words, hallucinated ones, truth objects covered, hallu objects named."""
    nouns = [w for w in caption_words(response) if w in vocab.words]
    safe, ha = _owners(truth, vocab.association), _owners(hallu, vocab.association)
    covered, named = [0] * len(truth), [0] * len(hallu)
    hallucinated = 0
    for noun in nouns:
        if noun in vocab.safe:
            continue
        i = _first(safe, noun)
        if i is not None:
            covered[i] = 1
            continue
        j = _first(ha, noun)
        if j is not None:
            named[j] = 1
        hallucinated += 1
    return {"words": len(nouns), "hallucinated": hallucinated, "covered": sum(covered), "truth": len(truth), "named": sum(named), "hallu": len(hallu)}


def generative_metrics(counts: list[dict[str, int]]) -> dict[str, float]:
    total = {k: sum(c[k] for c in counts) for k in ("words", "hallucinated", "covered", "truth", "named", "hallu")}
    return {
        "chair": ratio(total["hallucinated"], total["words"]),
        "cover": ratio(total["covered"], total["truth"]),
        "hal": ratio(sum(1 for c in counts if c["hallucinated"]), len(counts)),
        "cog": ratio(total["named"], total["hallu"]),
        "generative_responses": float(len(counts)),
    }


def parse_yes_no(answer: str) -> str:
    words = re.findall(r"[a-z]+", answer.lower())
    return words[0] if words and words[0] in ("yes", "no") else "other"


def discriminative_metrics(types: list[str], labels: list[str], predictions: list[str]) -> dict[str, float]:
    """Overall and per dimension (existence, attribute and its state, number, action; relation), "no" positive."""
    out = {**yes_no_counts(labels, predictions, positive="no"), "discriminative_questions": float(len(labels))}
    for dim in ("existence", "attribute", "state", "number", "action", "relation"):
        picked = [k for k, t in enumerate(types) if dim in DIMENSIONS[t]]
        if picked:
            m = yes_no_counts([labels[k] for k in picked], [predictions[k] for k in picked], positive="no")
            out.update({f"{dim}_{name}": v for name, v in m.items()})
    return out


def _annotations(data: bytes) -> dict[int, dict]:
    by_id: dict[int, dict] = {}
    for n, row in json_list(data, "annotations file"):
        where = f"annotations file row {n}"
        aid = need(row, "id", int, where)
        kind = need(row, "type", str, where)
        if kind not in TYPES:
            raise InvalidRequest(f"{where}: field 'type' must be one of {', '.join(TYPES)}, not {kind!r}")
        if kind == "generative":
            string_list(row, "truth", where)
            string_list(row, "hallu", where)
        elif need(row, "truth", str, where) not in ("yes", "no"):
            raise InvalidRequest(f"{where}: field 'truth' must be \"yes\" or \"no\" for a {kind} entry, not {row['truth']!r}")
        if aid in by_id:
            raise InvalidRequest(f"{where}: id {aid} repeats an earlier row's")
        by_id[aid] = row
    return by_id


def _vocabulary(relation: bytes, safe_words: bytes) -> Vocabulary:
    rel = json_document(relation, "relation file")
    if not isinstance(rel, dict):
        raise InvalidRequest("relation file: not a JSON object (object word -> associated words)")
    for word in rel:
        string_list(rel, word, "relation file")
    try:
        safe = [line.strip() for line in safe_words.decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:
        raise InvalidRequest(f"safe words file: not UTF-8 (byte {e.start})") from None
    return Vocabulary(rel, safe)


class Suite:
    def __init__(self, questions: bytes, references: dict[str, bytes]) -> None:
        annotations = _annotations(reference(references, "annotations", "amber"))
        self.questions: list[Question] = []
        self.entries: list[dict] = []
        for n, row in json_list(questions, NAME):
            where = f"{NAME} row {n}"
            qid = need(row, "id", int, where)
            image = need(row, "image", str, where, nonempty=True)
            query = need(row, "query", str, where, nonempty=True)
            if qid not in annotations:
                raise InvalidRequest(f"{where}: id {qid} has no entry in the annotations file")
            entry = annotations[qid]
            self.questions.append(Question(str(qid), query, image, {"id": qid, "image": image, "query": query, "type": entry["type"]}))
            self.entries.append(entry)
        self.vocab = None
        generative = [e for e in self.entries if e["type"] == "generative"]
        if generative:
            # AMBER's generative metric needs both; discriminative-only query files need neither.
            self.vocab = _vocabulary(reference(references, "relation", "amber"), reference(references, "safe_words", "amber"))
            for e in generative:
                for field in ("truth", "hallu"):
                    for word in e[field]:
                        if word not in self.vocab.association:
                            raise InvalidRequest(f"annotations file id {e['id']}: {field} word {word!r} is no key of the relation file")

    def parse(self, k: int, answer: str) -> str:
        """A discriminative answer's yes, no or other; a response's vocabulary words."""
        if self.entries[k]["type"] != "generative":
            return parse_yes_no(answer)
        return ", ".join(w for w in caption_words(answer) if w in self.vocab.words)

    def metrics(self, answers: list[str]) -> dict[str, float]:
        out: dict[str, float] = {"questions": float(len(answers)), "empty_answers": float(sum(1 for a in answers if not a.strip()))}
        gen = [(e, a) for e, a in zip(self.entries, answers, strict=True) if e["type"] == "generative"]
        if gen:
            out.update(generative_metrics([generative_counts(a, e["truth"], e["hallu"], self.vocab) for e, a in gen]))
        disc = [(e, a) for e, a in zip(self.entries, answers) if e["type"] != "generative"]
        if disc:
            out.update(discriminative_metrics([e["type"] for e, _ in disc], [e["truth"] for e, _ in disc], [parse_yes_no(a) for _, a in disc]))
        return out
