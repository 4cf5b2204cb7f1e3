"""Embeddings through the runner (core v2): each text cached on its own, the missing ones embedded
in batches, identical vectors from the cache and from the model."""

from __future__ import annotations

import pytest

import asyncio
from pathlib import Path

import numpy as np

from personae.backends.base import Request, Tags
from personae.backends.embedders import EmbedBackend
from personae.embed import HashEmbedder
from personae.runner import Runner
from personae.spec import resolve_spec
from personae.store import Store

from .test_study_style import PROMPTS, persona_styles, run, spec


class CountingEmbedder(EmbedBackend):
    """embed/hash that records every batch it is asked to embed."""

    def __init__(self) -> None:
        super().__init__("embed/hash")
        self.embed_batch_size = 4
        self.batches: list[list[str]] = []

    async def embed(self, requests):  # type: ignore[no-untyped-def]
        self.batches.append([r.input or "" for r in requests])
        return await super().embed(requests)


def embed_requests(texts: list[str]) -> list[Request]:
    return [Request(kind="embed", model="embed/hash", input=t, tags=Tags(item=str(i))) for i, t in enumerate(texts)]


def test_embeddings_are_cached_per_text_and_the_missing_ones_batched(tmp_path: Path) -> None:
    texts = [f"sentence number {i} about tea" for i in range(10)]
    backend = CountingEmbedder()
    with Store(tmp_path / "s.sqlite") as st:
        first = asyncio.run(Runner({"embed/hash": backend}, st).run(embed_requests(texts[:6])))
        assert [len(b) for b in backend.batches] == [4, 2]
        both = asyncio.run(Runner({"embed/hash": backend}, st).run(embed_requests(texts + texts[:2])))
    assert [len(b) for b in backend.batches[2:]] == [4]  # only the 4 new texts; the repeats share a key
    assert sorted(backend.batches[2]) == sorted(texts[6:])
    assert [r.cached for r in both] == [True] * 6 + [False] * 4 + [True] * 2
    direct = HashEmbedder().encode(texts)
    got = np.array([r.embedding.vector for r in both[:10]])
    assert np.array_equal(got, direct)  # bit-identical from the cache and from the model
    assert np.array_equal(np.array([r.embedding.vector for r in first]), direct[:6])


def test_a_failed_batch_is_an_error_row_for_each_text(tmp_path: Path) -> None:
    class Broken(CountingEmbedder):
        async def embed(self, requests):  # type: ignore[no-untyped-def]
            from personae.errors import BackendError

            raise BackendError("encoder crashed", backend=self.model_id)

    with Store(tmp_path / "s.sqlite") as st:
        results = asyncio.run(Runner({"embed/hash": Broken()}, st).run(embed_requests(["a", "b", "c"])))
        assert [r.ok for r in results] == [False] * 3 and st.count("errors") == 3 and st.count("results") == 0


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
def test_a_cached_rerun_of_the_style_study_computes_no_embedding(tmp_path: Path) -> None:
    data = spec(PROMPTS[:4])
    first = run(data, persona_styles, tmp_path / "one")
    embeds = [r for r in first.results if r.request.tags.role == "embedder"]
    answers = [r for r in first.results if r.request.tags.role is None and r.request.tags.condition != "baseline"]
    assert len(embeds) == len(answers) and first.stats.embedded_texts == len({r.text for r in answers})
    again = run(data, persona_styles, tmp_path / "two")
    assert again.stats.embedded_texts == 0 and again.stats.backend_calls == 0
    assert again.summary.stats["diversity"] == first.summary.stats["diversity"]
    resolved = resolve_spec(data)
    assert resolved.roles["embedder"].model == "embed/hash"  # options.embedder: hash, an alias
