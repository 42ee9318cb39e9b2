"""Phrase lexicon: colloquial words → catalogue terms, localities → department (data/lexicon.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class Lexicon:
    phrases: dict[tuple[str, ...], str]
    max_len: int

    def expand(self, normalized: str) -> str:
        """Terms to append for every phrase found in ``normalized`` (longest match first, left to right)."""
        tokens = normalized.split()
        out: list[str] = []
        i = 0
        while i < len(tokens):
            for n in range(min(self.max_len, len(tokens) - i), 0, -1):
                hit = self.phrases.get(tuple(tokens[i : i + n]))
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


def build_lexicon(data: dict) -> Lexicon:
    phrases: dict[tuple[str, ...], str] = {}
    for key, value in (data.get("synonyms") or {}).items():
        phrases[tuple(_fold(key).split())] = _fold(value)
    for dept, places in (data.get("localities") or {}).items():
        dept_norm = _fold(dept)
        expansion = "dpto" + dept_norm.replace(" ", "")
        for place in places:
            phrases[tuple(_fold(place).split())] = expansion
    phrases.pop((), None)
    return Lexicon(phrases, max((len(k) for k in phrases), default=1))


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
