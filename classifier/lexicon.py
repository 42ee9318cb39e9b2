"""Phrase lexicon: colloquial words → catalogue terms, localities → department (data/lexicon.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import snowballstemmer

_stemmer = snowballstemmer.stemmer("spanish")


@lru_cache(maxsize=100_000)
def _stem(token: str) -> str:
    return str(_stemmer.stemWord(token))


@dataclass(frozen=True)
class Lexicon:
    phrases: dict[tuple[str, ...], str]
    max_len: int
    # The synonyms whose last word is a verb in the infinitive, again, keyed by the Snowball stems of their words, so
    # that conjugated forms match too ("alquilé", "alquilamos" → "alquilar"). Tried after the exact phrases.
    stemmed: dict[tuple[str, ...], str] = field(default_factory=dict)

    def expand(self, normalized: str) -> str:
        """Terms to append for every phrase found in ``normalized`` (longest match first, left to right; exact
        matches before stem matches)."""
        tokens = normalized.split()
        stems: list[str] | None = None
        out: list[str] = []
        i = 0
        while i < len(tokens):
            for n in range(min(self.max_len, len(tokens) - i), 0, -1):
                hit = self.phrases.get(tuple(tokens[i : i + n]))
                if hit is None and self.stemmed:
                    if stems is None:
                        stems = [_stem(t) for t in tokens]
                    hit = self.stemmed.get(tuple(stems[i : i + n]))
                if hit is not None:
                    out.append(hit)
                    i += n
                    break
            else:
                i += 1
        return " ".join(out)


def _fold(text: str) -> str:
    from classifier.normalize import basic_normalize

    return basic_normalize(text)


_VERB_ENDINGS = ("ar", "er", "ir", "arme", "erme", "irme", "arlo", "erlo", "irlo", "arla", "erla", "irla")


def _is_verb(word: str) -> bool:
    """An infinitive (with or without a pronoun): its other forms are what stem matching is for. Nouns are left to
    exact matching: their stems collide more ("localidad" and "local" share one)."""
    return len(word) > 4 and word.endswith(_VERB_ENDINGS)


def build_lexicon(data: dict) -> Lexicon:
    phrases: dict[tuple[str, ...], str] = {}
    stemmed: dict[tuple[str, ...], str] = {}
    for key, value in (data.get("synonyms") or {}).items():
        words = tuple(_fold(key).split())
        phrases[words] = _fold(value)
        if words and _is_verb(words[-1]):
            stemmed.setdefault(tuple(_stem(w) for w in words), _fold(value))
    for dept, places in (data.get("localities") or {}).items():
        dept_norm = _fold(dept)
        expansion = "dpto" + dept_norm.replace(" ", "")
        for place in places:
            phrases[tuple(_fold(place).split())] = expansion
    phrases.pop((), None)
    return Lexicon(phrases, max((len(k) for k in phrases), default=1), stemmed)


def load_lexicon(path: Path | None = None) -> Lexicon:
    if path is None:
        raw = resources.files("classifier").joinpath("data/lexicon.toml").read_text(encoding="utf-8")
    else:
        raw = path.read_text(encoding="utf-8")
    return build_lexicon(tomllib.loads(raw))


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    return load_lexicon()


@lru_cache(maxsize=32768)
def expand(normalized: str) -> str:
    return default_lexicon().expand(normalized)
