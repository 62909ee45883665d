"""The learned layer: character n-grams of the normalised text and of its pinyin, a linear model.

Shipped as ``model/intent_model.npz`` (no pickle: the vocabulary, idf weights, coefficients and the
calibration are plain arrays, so loading runs no code from the file). Inference is pure Python + numpy:
the featuriser below is the one training uses, so shipped and trained models see the same features.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LABELS: tuple[str, ...] = ("unsubscribe", "resubscribe", "help", "status", "other")
MODEL_PATH = Path(__file__).resolve().parent / "model" / "intent_model.npz"
_PINYIN_PREFIX = "\x01"  # keeps the pinyin n-grams apart from the text n-grams in one vocabulary


def ngrams(text: str, pinyin: str) -> list[str]:
    """char_wb 1–4 grams of the text (each word padded with spaces, as scikit-learn's ``char_wb``),
    and char 2–5 grams of the space-less pinyin (people type pinyin with and without spaces)."""
    grams: list[str] = []
    append = grams.append
    for word in text.split():
        w = f" {word} "
        length = len(w)
        for n in (1, 2, 3, 4):
            if n > length:
                break
            for i in range(length - n + 1):
                append(w[i : i + n])
    if pinyin:
        p = f" {pinyin} "
        length = len(p)
        for n in (2, 3, 4, 5):
            for i in range(length - n + 1):
                append(_PINYIN_PREFIX + p[i : i + n])
    return grams


@dataclass(frozen=True)
class Params:
    vocabulary: dict[str, int]
    idf: np.ndarray  # (V,)
    coef: np.ndarray  # (V, K): transposed, so that a message's rows are contiguous
    intercept: np.ndarray  # (K,)
    temperature: float  # calibration: softmax(scores / T), T fitted on dev
    thresholds: dict[str, float]  # tuned on dev, see classifier.py


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


def features(grams: list[str], vocabulary: dict[str, int], idf: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Sublinear tf × idf, l2-normalised: the same as TfidfVectorizer(sublinear_tf=True)."""
    counts = Counter(i for i in map(vocabulary.get, grams) if i is not None)
    if not counts:
        return [], np.zeros(0)
    index = list(counts)
    values = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=np.float64, count=len(index))
    values *= idf[index]
    values /= math.sqrt(float(values @ values))
    return index, values


def probabilities(params: Params, text: str, pinyin: str) -> np.ndarray:
    index, values = features(ngrams(text, pinyin), params.vocabulary, params.idf)
    scores = params.intercept + (values @ params.coef[index] if index else 0.0)
    scores = scores / params.temperature
    scores = np.exp(scores - scores.max())
    return scores / scores.sum()
