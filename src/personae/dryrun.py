"""What a run would send, and cost, before it runs: `personae run SPEC --dry-run`.

The spec is checked as `run` checks it (the same resolution, the same Run object, the same
folder check), and the study plans its waves through the same cache keys a real run computes
(`Runner.key_for`: the backend's fingerprint included), looked up in the store opened read-only.
No model is called and nothing is written, the store included.

Which numbers are exact:
- the first wave: the study's plan with no results, exactly what a run sends first;
- a later wave is exact too while every result before it is in the store (a resumed run);
- past the first wave that needs an answer the store does not hold, later waves are estimated:
  the study plans them from placeholder answers (generations `max_tokens` long, so a dialogue's
  later prompts are not underestimated; a fixed score; a fixed vector). A study whose later waves
  depend on what the model says (a sequential design stops when the data decide, a judge is asked
  about each answer) gets the count its plan gives for those placeholders: for a sequential design
  that is its maximum.
- prompt tokens: counted with the model's own tokenizer for local models (no weights loaded),
  characters / 4 otherwise; completion tokens: `max_tokens` per generation, an upper bound.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends.base import Backend, Embedding, Generation, Request, Score
from .cost import Price, cost_of, role_label
from .errors import ConfigError
from .runner import Result, Runner, result_from_output
from .spec_types import ResolvedSpec
from .store import MIGRATIONS, Store, default_store_path

__all__ = ["DryRun", "DryRunRow", "estimate_run"]

MAX_SIMULATED = 2_000_000
"""Most requests a dry run simulates; past it, the estimate says it stopped counting."""
PLACEHOLDER_DIM = 384
"""Length of a placeholder embedding (MiniLM's)."""


@dataclass
class DryRunRow:
    """One model in one role."""

    model: str
    role: str
    first_wave: int = 0
    """Requests of the first wave (exact)."""
    later_waves: int = 0
    """Requests of the later waves (exact while the store answers every wave before; else estimated)."""
    cached: int = 0
    """Requests the store answers already (same cache keys as a run)."""
    to_send: int = 0
    """Distinct requests that would go to the backend."""
    prompt_tokens: int = 0
    """Estimated prompt tokens of the requests to send."""
    completion_tokens: int = 0
    """Upper bound on completion tokens of the requests to send (max_tokens per generation)."""
    tokens_counted_by: str = "chars/4"
    """'tokenizer' (the local model's own) or 'chars/4' (an estimate)."""
    price: Price | None = None
    cost: float | None = None
    """Estimated cost of the requests to send; None: no price set."""

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "price"},
                "price": self.price.model_dump() if self.price else None}


@dataclass
class DryRun:
    """The estimate of one run."""

    rows: list[DryRunRow]
    waves: int
    """Waves planned (simulated past the exact ones)."""
    exact_waves: int
    """Leading waves whose requests are exact."""
    store: str
    store_exists: bool
    notes: list[str] = field(default_factory=list)

    @property
    def estimated(self) -> bool:
        return self.waves > self.exact_waves

    def total(self, name: str) -> int:
        return sum(getattr(r, name) for r in self.rows)

    @property
    def cost(self) -> float | None:
        """The total cost, when every model that sends requests has a price."""
        costs = [r.cost for r in self.rows if r.to_send]
        return sum(c for c in costs if c is not None) if all(c is not None for c in costs) else None

    def as_dict(self) -> dict[str, Any]:
        return {"rows": [r.as_dict() for r in self.rows], "waves": self.waves, "exact_waves": self.exact_waves,
                "store": self.store, "store_exists": self.store_exists, "cost": self.cost, "notes": self.notes}


class ReadOnlyStore(Store):
    """The store opened read-only (SQLite `mode=ro`): the cache look-ups of a run, and no writes."""

    def __init__(self, path: str | Path) -> None:  # not super().__init__: that creates, migrates and writes
        self.path = Path(path)
        self.notices = []
        try:
            self._conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=60.0,
                                         isolation_level=None, check_same_thread=False)
            self._check_is_store()
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            self._version = self.schema_version if "migrations" in tables else 0
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read the store: {exc}.", file=str(self.path),
                              fix="point PERSONAE_STORE (or --store) at the store the run will use.") from None
        if self._version > len(MIGRATIONS):
            raise ConfigError(f"was written by a newer personae: its schema is version {self._version}, and this "
                              f"personae reads up to version {len(MIGRATIONS)}.", file=str(self.path),
                              fix="upgrade personae (pip install -U personae), or point PERSONAE_STORE (or --store) "
                              "at another file.")

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        if self._version < 2:  # a new or a personae 0.1 store: no key v2 results (a run migrates it)
            return {}
        return super().get_many(keys)


class _EmptyStore:
    """No store file yet: nothing cached (a dry run does not create it)."""

    path: Path

    def __init__(self, path: Path) -> None:
        self.path = path

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        return {}

    def close(self) -> None:
        pass


def _placeholder(request: Request, key: str) -> Result:
    """A stand-in answer for a request the store does not hold, to plan the waves after it."""
    if request.kind == "score":
        return Result(request, key, score=Score(logprob=-1.0, n_tokens=1))
    if request.kind == "embed":
        d = hashlib.sha256(key.encode()).digest()
        raw = [d[i % len(d)] / 255.0 - 0.5 + (i == 0) for i in range(PLACEHOLDER_DIM)]
        norm = math.sqrt(sum(x * x for x in raw))
        return Result(request, key, embedding=Embedding(vector=tuple(x / norm for x in raw)))
    n = request.sampling.max_tokens
    return Result(request, key, generation=Generation(text=" ".join(["word"] * n), finish_reason="length",
                                                      completion_tokens=n))


def _chars(request: Request) -> int:
    return (sum(len(m.content) for m in request.messages) + len(request.prompt or "")
            + len(request.continuation or "") + len(request.input or ""))


def _tokens(request: Request, backend: Backend) -> tuple[int, int, str]:
    """(prompt tokens, completion tokens upper bound, how prompt tokens were counted)."""
    completion = request.sampling.max_tokens if request.kind == "generate" else 0
    count = getattr(backend, "count_prompt_tokens", None)
    if count is not None and request.kind != "embed":
        return count(request), completion, "tokenizer"
    return math.ceil(_chars(request) / 4), completion, "chars/4"


def estimate_run(resolved: ResolvedSpec, *, store: str | Path | None = None, out_dir: str | Path | None = None,
                 overwrite: bool = False) -> DryRun:
    """Plan the run without running it: requests per model and role, what the store answers, tokens
    and cost (prices from `resolved.spec.prices`). Raises the ConfigError a run would raise."""
    from .api import Run  # noqa: PLC0415 (api imports the report and the studies)

    path = Path(store) if store is not None else default_store_path()
    if path.is_dir():
        raise ConfigError("is a folder, not a store file.", file=str(path),
                          fix="set PERSONAE_STORE (or --store) to the store file the run will use.")
    exists = path.is_file()
    st: Any = ReadOnlyStore(path) if exists else _EmptyStore(path)
    try:
        run = Run(resolved, out_dir, store=st, overwrite=overwrite)
        if run.out is not None and (run.out / "run.json").is_file():
            run._check_folder_owner()
        runner = Runner(run.pool, st)
        return _simulate(run.study, runner, resolved.spec.prices, str(path), exists)
    finally:
        st.close()  # the pool's backends made no connection and loaded no weights: nothing else to close


def _simulate(study: Any, runner: Runner, prices: Mapping[str, Price], store: str, exists: bool) -> DryRun:
    rows: dict[tuple[str, str], DryRunRow] = {}
    done: list[Result] = []
    answered: set[str] = set()  # keys the store holds or the run would have computed by then
    exact, exact_waves, waves, simulated, notes = True, 0, 0, 0, []
    for wave in range(study.max_waves):
        try:
            requests = study.plan(done)
        except Exception as exc:  # noqa: BLE001 (placeholder answers a study cannot plan from)
            if wave == 0 or exact:
                raise
            notes.append(f"waves after wave {wave} could not be simulated from placeholder answers "
                         f"({type(exc).__name__}: {exc}); the counts stop there.")
            break
        if not requests:
            break
        waves += 1
        exact_waves += exact
        if simulated + len(requests) > MAX_SIMULATED:
            notes.append(f"stopped counting after {simulated:,} simulated requests (wave {wave + 1} and later not "
                         "counted).")
            break
        simulated += len(requests)
        backends = [runner.backend_for(r) for r in requests]
        keys = [runner.key_for(r, b) for r, b in zip(requests, backends)]
        hits = runner.store.get_many(keys)
        sent: set[str] = set()
        for req, key, backend in zip(requests, keys, backends):
            row = rows.get((req.model, role_label(req.tags.role)))
            if row is None:
                row = rows[(req.model, role_label(req.tags.role))] = DryRunRow(req.model, role_label(req.tags.role))
            if wave == 0:
                row.first_wave += 1
            else:
                row.later_waves += 1
            if key in hits:
                row.cached += 1
                done.append(result_from_output(req, key, *hits[key], cached=True))
                continue
            done.append(_placeholder(req, key))
            if key in answered or key in sent:
                continue  # sent once per run: duplicates share the answer
            sent.add(key)
            prompt, completion, how = _tokens(req, backend)
            row.to_send += 1
            row.prompt_tokens += prompt
            row.completion_tokens += completion
            row.tokens_counted_by = how
        answered |= sent | set(hits)
        exact = exact and not sent
    else:
        notes.append(f"the study planned more than {study.max_waves} waves with placeholder answers.")
    out = sorted(rows.values(), key=lambda r: (r.role != "(studied)", r.role, r.model))
    for row in out:
        row.price = prices.get(row.model)
        row.cost = cost_of(row.price, row.prompt_tokens, row.completion_tokens)
    if getattr(study, "sequencer", None) is not None and waves > exact_waves:
        notes.append("a sequential design stops once the data decide: its estimated later waves are its maximum.")
    return DryRun(rows=out, waves=waves, exact_waves=exact_waves, store=store, store_exists=exists, notes=notes)
