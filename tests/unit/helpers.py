"""Small builders shared by the unit tests (fake backend only: no model, no network)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from personae.backends.base import Message, Request
from personae.backends.fake import FakeBackend
from personae.runner import Result, RetryPolicy, Runner
from personae.store import Store

MODEL = "fake/test"

# Retries without waiting, so that failure tests are fast.
FAST_RETRY: dict[str, Any] = {"max_attempts": 3, "base_delay_s": 0.0, "jitter": 0.0, "timeout_s": 5.0}


def request(text: str = "hello", *, replicate: int = 0, model: str = MODEL, **fields: Any) -> Request:
    """A one-message chat request."""
    return Request(model=model, messages=(Message(role="user", content=text),), replicate=replicate, **fields)


def key(req: Request) -> str:
    """The cache key the runner gives `req` on a default fake backend of its model."""
    return req.cache_key(FakeBackend(req.model).fingerprint())


def run_requests(backend: FakeBackend, store: Store, requests: Sequence[Request], *,
                 retry: RetryPolicy | None = None, concurrency: int = 4,
                 run_id: str | None = None) -> tuple[list[Result], Runner]:
    runner = Runner({backend.model_id: backend}, store, concurrency=concurrency,
                    retry=retry or RetryPolicy(**FAST_RETRY), run_id=run_id)
    results = asyncio.run(runner.run(list(requests)))
    return results, runner


def write_spec(folder: Path, data: dict[str, Any], name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _spec(study: str, options: dict[str, Any], *, personas: Sequence[Any], replicates: int, seed: int,
          backend: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "study": study,
        "model": MODEL,
        "backend": dict(backend or {}),
        "personas": list(personas),
        "replicates": replicates,
        "seed": seed,
        "sampling": {"temperature": 0.7, "max_tokens": 32},
        "concurrency": {"requests": 4, "retry": dict(FAST_RETRY)},
        "options": options,
    }


def grid_spec(questions: Sequence[Any], *, personas: Sequence[Any] = ("builtin:pirate-captain",),
              replicates: int = 2, backend: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {**_spec("grid", {"questions": list(questions)}, personas=personas, replicates=replicates, seed=11,
                    backend=backend), **extra}


def dialogue_spec(turns: Sequence[str], *, personas: Sequence[Any] = ("builtin:pirate-captain",
                                                                      "builtin:grumpy-farmer"),
                  replicates: int = 2, backend: dict[str, Any] | None = None) -> dict[str, Any]:
    return _spec("dialogue", {"user_turns": list(turns)}, personas=personas, replicates=replicates, seed=5,
                 backend=backend)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))

