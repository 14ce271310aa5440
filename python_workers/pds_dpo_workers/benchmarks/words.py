"""Words of a caption: a tokenizer and a noun singularizer, in place of NLTK's word_tokenize
with WordNet's lemmatizer (CHAIR in RLHF-V, AMBER) or pattern's singularize (the original
CHAIR), whose data cannot be installed here.

Departures, all small: tokens are runs of letters and digits (hyphens inside a word
kept, a clitic such as 's split off as NLTK does), every other character a token of its
own; plurals are undone by rule and by a list of irregular and invariant nouns, where
WordNet looks words up. A word the rules get wrong only matters when its wrong singular is
a benchmark object word.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*|'[a-z]+|[^\sa-z0-9]")

IRREGULAR = {
    "men": "man", "women": "woman", "children": "child", "feet": "foot", "teeth": "tooth",
    "mice": "mouse", "geese": "goose", "oxen": "ox", "knives": "knife", "leaves": "leaf",
    "wolves": "wolf", "shelves": "shelf", "scarves": "scarf", "loaves": "loaf", "halves": "half",
    "calves": "calf", "wives": "wife", "lives": "life", "thieves": "thief", "hooves": "hoof",
    "buses": "bus", "shoes": "shoe", "toes": "toe", "canoes": "canoe", "hoes": "hoe",
    "ties": "tie", "pies": "pie", "cookies": "cookie", "movies": "movie", "kites": "kite",
    "horses": "horse", "houses": "house", "vases": "vase", "cases": "case", "bases": "base",
    "glasses": "glass", "dresses": "dress", "buildings": "building", "clothes": "clothes",
}
# Plural-looking words that are their own singular (or have none).
INVARIANT = {
    "people", "sheep", "fish", "deer", "series", "species", "scissors", "pants", "jeans",
    "shorts", "news", "this", "is", "was", "has", "his", "its", "as", "us", "yes",
    "always", "gas", "lens", "tennis", "axis", "iris", "bus", "cactus", "walrus", "octopus",
}


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def singular(word: str) -> str:
    """The singular of a lower-case plural noun; any other word unchanged."""
    if word in INVARIANT:
        return word
    if word in IRREGULAR:
        return IRREGULAR[word]
    if len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "sis")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses", "oes")):
        return word[:-2]
    return word[:-1]


def caption_words(text: str) -> list[str]:
    """The caption's tokens, each singularized."""
    return [singular(w) for w in tokenize(text)]
