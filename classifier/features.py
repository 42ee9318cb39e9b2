"""Feature extraction: word n-grams over stemmed tokens + character n-grams (char_wb), TF-IDF weighted."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

import numpy as np
import scipy.sparse as sp
import snowballstemmer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize as l2_normalize

from classifier.normalize import normalize, normalize_parts

# Words that carry no topic (greetings, fillers, question words). Removed from the word features only: the char
# n-grams still see them.
STOPWORDS = frozenset(
    """a al algo alguien alguna alguno algunos ante antes aqui asi aun bien buen buena buenas buenos cada como con
    contra cual cuando de del desde donde dos el ella ellas ellos en entre era es esa ese eso esta estaba estan estar
    este esto estoy fue gracias ha habia hace hacer hay hola la las le les lo los me mi mis mucho muy nada ni no nos
    o otra otro para pero poco por porque puede pueden puedo que quien saludos se ser si sin sobre soy su sus tambien
    tanto te tengo ti tiene todo todos tu un una uno unos usted ustedes va vez y ya yo dia dias tardes noches favor
    consulta consultar quisiera queria quiero necesito saber gustaria hacer hago tengo estimados estimado
    senores""".split()
)

_stemmer = snowballstemmer.stemmer("spanish")


@lru_cache(maxsize=200_000)
def stem(token: str) -> str:
    return str(_stemmer.stemWord(token))


def stemmed(normalized: str) -> str:
    return " ".join(stem(t) for t in normalized.split() if t not in STOPWORDS and len(t) > 1)


@dataclass(frozen=True)
class FeatureConfig:
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    min_df: int = 1
    max_features: int | None = 200_000
    char_weight: float = 1.0


class Featurizer:
    """Fits and applies the two TF-IDF vectorizers; rows are L2-normalized after concatenation."""

    def __init__(self, cfg: FeatureConfig | None = None) -> None:
        self.cfg = cfg or FeatureConfig()
        self.word = TfidfVectorizer(
            ngram_range=self.cfg.word_ngrams,
            min_df=self.cfg.min_df,
            sublinear_tf=True,
            lowercase=False,
            token_pattern=r"(?u)\b\w\w+\b",
            max_features=self.cfg.max_features,
            dtype=np.float32,
        )
        self.char = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=self.cfg.char_ngrams,
            min_df=self.cfg.min_df,
            sublinear_tf=True,
            lowercase=False,
            max_features=self.cfg.max_features,
            dtype=np.float32,
        )

    @staticmethod
    def prepare(texts: list[str]) -> tuple[list[str], list[str]]:
        normalized = [normalize(t) for t in texts]
        return [stemmed(n) for n in normalized], normalized

    def fit(self, texts: list[str]) -> Featurizer:
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts: list[str]) -> sp.csr_matrix:
        words, chars = self.prepare(texts)
        w = self.word.fit_transform(words)
        c = self.char.fit_transform(chars)
        for vec in (self.word, self.char):
            vec.stop_words_ = None  # the terms cut by max_features/min_df: only for introspection, and large
        return self._combine(w, c)

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        """Same result as the vectorizers' ``transform`` + ``_combine``, without sklearn's per-call overhead (which
        dominates for one short message)."""
        return self.transform_with_base(texts)[0]

    def transform_with_base(self, texts: list[str]) -> tuple[sp.csr_matrix, list[str]]:
        """:meth:`transform`, plus each text's normalization without the lexicon (for the body mentions)."""
        parts = [normalize_parts(t) for t in texts]
        chars = [full for _, full in parts]
        words = [stemmed(n) for n in chars]
        fast = self._fast()
        x = fast.combine(fast.block(words, 0), fast.block(chars, 1), len(texts), self.cfg.char_weight)
        return x, [base for base, _ in parts]

    def _fast(self) -> _FastVectorizer:
        cached: _FastVectorizer | None = getattr(self, "_fast_cache", None)
        if cached is None or cached.word_vocab is not self.word.vocabulary_:
            cached = _FastVectorizer(self.word, self.char)
            self._fast_cache = cached
        return cached

    def _combine(self, w: sp.csr_matrix, c: sp.csr_matrix) -> sp.csr_matrix:
        """Concatenate the two L2-normalized blocks (char block scaled), then L2-normalize each row."""
        return sp.csr_matrix(l2_normalize(sp.hstack([w, c * self.cfg.char_weight], format="csr", dtype=np.float32)))

    def feature_names(self) -> np.ndarray:
        words = self.word.get_feature_names_out()
        chars = np.array([f"~{c}" for c in self.char.get_feature_names_out()], dtype=object)
        return np.concatenate([words.astype(object), chars])


class _FastVectorizer:
    """TF-IDF (sublinear tf, L2 rows) for fitted vectorizers, computed row by row in plain Python."""

    def __init__(self, word: TfidfVectorizer, char: TfidfVectorizer) -> None:
        self.word_vocab = word.vocabulary_
        self.parts = [
            (word.build_analyzer(), word.vocabulary_, np.asarray(word.idf_, dtype=np.float64), 0),
            (char.build_analyzer(), char.vocabulary_, np.asarray(char.idf_, dtype=np.float64), len(word.vocabulary_)),
        ]
        self.n_features = len(word.vocabulary_) + len(char.vocabulary_)
        self._word_cache: dict[str, list[int]] = {}

    def _char_indices(self, doc: str) -> list[int]:
        """Vocabulary indices of a document's char_wb n-grams: char_wb works word by word, so each distinct word's
        n-grams are looked up once and cached."""
        analyzer, vocab = self.parts[1][0], self.parts[1][1]
        cache = self._word_cache
        out: list[int] = []
        for word in doc.split():
            hit = cache.get(word)
            if hit is None:
                if len(cache) > 200_000:
                    cache.clear()
                hit = [vocab[g] for g in analyzer(word) if g in vocab]
                cache[word] = hit
            out.extend(hit)
        return out

    def block(self, docs: list[str], part: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One part's TF-IDF entries (sublinear tf, L2-normalized per row) as (rows, columns, values), sorted by row:
        the documents' vocabulary indices are counted and weighted for the whole batch at once, in numpy (a scipy
        matrix per call costs more than the arithmetic for one short message)."""
        analyzer, vocab, idf, offset = self.parts[part]
        if part == 1:
            hits = [self._char_indices(doc) for doc in docs]
        else:
            hits = [[vocab[g] for g in analyzer(doc) if g in vocab] for doc in docs]
        lengths = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(hits))
        cols = np.fromiter(chain.from_iterable(hits), dtype=np.int64, count=int(lengths.sum()))
        width = len(idf)
        keys, counts = np.unique(np.repeat(np.arange(len(docs)), lengths) * width + cols, return_counts=True)
        rows, cols = np.divmod(keys, width)
        vals = (1.0 + np.log(counts)) * idf[cols]
        return rows, cols + offset, vals / _row_norms(rows, vals, len(docs))[rows]

    def combine(
        self,
        w: tuple[np.ndarray, np.ndarray, np.ndarray],
        c: tuple[np.ndarray, np.ndarray, np.ndarray],
        n: int,
        char_weight: float,
    ) -> sp.csr_matrix:
        rows = np.concatenate([w[0], c[0]])
        order = np.argsort(rows, kind="stable")  # word entries, then char entries, row by row
        cols = np.concatenate([w[1], c[1]])[order]
        vals = np.concatenate([w[2], c[2] * char_weight])[order]
        rows = rows[order]
        vals = (vals / _row_norms(rows, vals, n)[rows]).astype(np.float32)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
        return sp.csr_matrix((vals, cols, indptr), shape=(n, self.n_features))


def _row_norms(rows: np.ndarray, vals: np.ndarray, n: int) -> np.ndarray:
    norms = np.sqrt(np.bincount(rows, weights=vals * vals, minlength=n))
    norms[norms == 0] = 1.0
    return norms
