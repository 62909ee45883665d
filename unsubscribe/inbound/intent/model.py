"""The learned layer: character n-grams of the normalised text and of its pinyin, a linear model.

Shipped as ``model/intent_model.npz`` (no pickle: the vocabulary, idf weights, coefficients and the
calibration are plain arrays, so loading runs no code from the file). Inference is pure Python + numpy:
the featuriser below is the one training uses, so shipped and trained models see the same features.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Label = Literal["unsubscribe", "resubscribe", "help", "status", "other"]  # the classifier's Intent
LABELS: tuple[Label, ...] = ("unsubscribe", "resubscribe", "help", "status", "other")
MODEL_PATH = Path(__file__).resolve().parent / "model" / "intent_model.npz"
_PINYIN_PREFIX = "\x01"  # keeps the pinyin n-grams apart from the text n-grams in one vocabulary


# A long message is mostly pasted text: its first and last characters carry the reply ("TD" after a
# pasted advert). Capping the length keeps every message's cost bounded.
HEAD = TAIL = 80
WORD_CACHE_SIZE = 100_000


def _word_grams(word: str) -> set[str]:
    w = f" {word} "
    grams = set(w)
    grams.update([w[i : i + 2] for i in range(len(w) - 1)])
    grams.update([w[i : i + 3] for i in range(len(w) - 2)])
    grams.update([w[i : i + 4] for i in range(len(w) - 3)])
    grams.discard(" ")
    return grams


def _pinyin_grams(pinyin: str) -> list[str]:
    p = f"{_PINYIN_PREFIX}{pinyin}{_PINYIN_PREFIX}"
    return [_PINYIN_PREFIX + p[i : i + 4] for i in range(len(p) - 3)]


def _truncate(text: str, pinyin: str) -> tuple[str, str]:
    if len(text) > HEAD + TAIL:
        return f"{text[:HEAD]} {text[-TAIL:]}", f"{pinyin[:HEAD]}{pinyin[-TAIL:]}"
    return text, pinyin


def ngrams(text: str, pinyin: str) -> set[str]:
    """The distinct char_wb 1–4 grams of the text (each word padded with spaces, as scikit-learn's
    ``char_wb``), and the char 4-grams of the space-less pinyin (people type pinyin with and without
    spaces). Binary: a repeated n-gram says nothing more in a reply this short."""
    text, pinyin = _truncate(text, pinyin)
    grams: set[str] = set()
    for word in text.split():
        grams |= _word_grams(word)
    if pinyin:
        grams.update(_pinyin_grams(pinyin))
    return grams


@dataclass(frozen=True)
class Params:
    vocabulary: dict[str, int]
    idf: np.ndarray  # (V,)
    coef: np.ndarray  # (V, K): transposed, so that a message's rows are contiguous
    intercept: np.ndarray  # (K,)
    temperature: float  # calibration: softmax(scores / T), T fitted on dev
    thresholds: dict[str, float]  # tuned on dev, see classifier.py
    # word -> its n-grams' rows: words repeat across replies ("please", "stop", "谢谢"), so most
    # look-ups are one dict hit instead of a dozen
    word_cache: dict[str, frozenset[int]] = field(default_factory=dict, compare=False, repr=False)

    def word_indices(self, word: str) -> frozenset[int]:
        found = self.word_cache.get(word)
        if found is None:
            if len(self.word_cache) >= WORD_CACHE_SIZE:
                self.word_cache.clear()
            hits = set(map(self.vocabulary.get, _word_grams(word)))
            hits.discard(None)
            found = self.word_cache[word] = frozenset(hits)  # type: ignore[arg-type]
        return found

    def message_indices(self, text: str, pinyin: str) -> list[int]:
        """The same rows as ``indices(ngrams(text, pinyin))``, word by word through the cache."""
        text, pinyin = _truncate(text, pinyin)
        found: set[int | None] = set()
        for word in text.split():
            found |= self.word_indices(word)
        if pinyin:
            found.update(map(self.vocabulary.get, _pinyin_grams(pinyin)))
        found.discard(None)
        return list(found)  # type: ignore[arg-type]

    @functools.cached_property
    def intercept_list(self) -> list[float]:
        return [float(b) for b in self.intercept]

    @functools.cached_property
    def weighted(self) -> np.ndarray:
        """(V, K + 1): the coefficients times idf, and idf² in the last column, so that one look-up
        of a message's rows gives both the scores and the norm."""
        return np.hstack([self.coef * self.idf[:, None], (self.idf * self.idf)[:, None]])


def save(path: Path, params: Params) -> None:
    vocab = sorted(params.vocabulary, key=params.vocabulary.__getitem__)
    joined = "\x00".join(vocab).encode("utf-8")
    names = sorted(params.thresholds)
    np.savez_compressed(
        path,
        vocabulary=np.frombuffer(joined, dtype=np.uint8),
        idf=params.idf.astype(np.float32),
        coef=params.coef.astype(np.float32),
        intercept=params.intercept.astype(np.float32),
        temperature=np.array([params.temperature], dtype=np.float64),
        threshold_names=np.frombuffer("\x00".join(names).encode(), dtype=np.uint8),
        threshold_values=np.array([params.thresholds[n] for n in names], dtype=np.float64),
        labels=np.frombuffer("\x00".join(LABELS).encode(), dtype=np.uint8),
    )


def load(path: Path = MODEL_PATH) -> Params:
    with np.load(path, allow_pickle=False) as data:
        labels = tuple(data["labels"].tobytes().decode().split("\x00"))
        if labels != LABELS:
            raise ValueError(f"{path}: labels {labels} are not {LABELS}")
        vocab = data["vocabulary"].tobytes().decode("utf-8").split("\x00")
        names = data["threshold_names"].tobytes().decode().split("\x00")
        return Params(
            vocabulary={gram: i for i, gram in enumerate(vocab)},
            idf=data["idf"].astype(np.float64),
            coef=np.ascontiguousarray(data["coef"], dtype=np.float64),
            intercept=data["intercept"].astype(np.float64),
            temperature=float(data["temperature"][0]),
            thresholds=dict(zip(names, data["threshold_values"].tolist(), strict=True)),
        )


@functools.cache
def shipped() -> Params:
    return load(MODEL_PATH)


def indices(grams: set[str], vocabulary: dict[str, int]) -> list[int]:
    found = set(map(vocabulary.get, grams))
    found.discard(None)
    return list(found)  # type: ignore[arg-type]


def features(grams: set[str], vocabulary: dict[str, int], idf: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Binary tf × idf, l2-normalised (TfidfVectorizer(binary=True)): what training fits on."""
    index = sorted(indices(grams, vocabulary))
    if not index:
        return [], np.zeros(0)
    values = idf[index]
    return index, values / math.sqrt(float(values @ values))


def probabilities(params: Params, text: str, pinyin: str) -> list[float]:
    """Calibrated probabilities of ``LABELS``. Plain floats: for five numbers Python beats numpy."""
    index = params.message_indices(text, pinyin)
    intercept = params.intercept_list
    if index:
        # idf is folded into the coefficients: score = intercept + Σ idf·w / ‖idf‖
        rows = params.weighted[index].sum(axis=0).tolist()
        norm = math.sqrt(rows[-1])
        scores = [(b + r / norm) / params.temperature for b, r in zip(intercept, rows, strict=False)]
    else:
        scores = [b / params.temperature for b in intercept]
    top = max(scores)
    exps = [math.exp(x - top) for x in scores]
    total = sum(exps)
    return [e / total for e in exps]
