"""listener: does the imaginary listener pick replies only the true persona would say?

METHODS.md section 5 (Kim et al. 2020, arXiv 2004.05816). Ranking mode, on any backend that
scores text. Each unit has a true persona, a context and N candidate replies; its world is the
true persona and k distractors (`listener.distractors`: random, nearest or farthest by
embedding). Every candidate is scored under every world (kind="score", per_token=True, messages
= the world's persona as the system prompt + the context); then

- S0 ranks by the true world's length-normalised log-likelihood (N requests per unit);
- S1 ranks by the length-normalised S1 score of `listener.rsa.sequence_score` ((k+1) x N).

Units come from the ranking set (`set`: builtin, 62 items written for personae, or a file):
Hits@1 (the gold reply on top), Contradict@1 (lower is better), Entail@1; and from dialogue
files (`dialogues`, PersonaChat/ConvAI2 layouts): the true next line among lines of other
dialogues, Hits@1. S0 vs S1 with bootstrap CIs and the paired difference over units.

Waves: 0 embeds the persona pool (only for nearest/farthest distractors), then one wave of
score requests.

Generation mode (`options.generation`, personae.listener.generation): greedy S0 and S1 replies
(token-level listener decoding, backends with `supports_multiseq`) to the set's prompts in the
same wave as the scores, then a wave that judges every reply against its persona (`roles.judge`)
and scores it under every world: the contradiction rate and the listener posterior, S0 vs S1.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..backends.base import Request, Tags
from ..dialogue import Dialogue, Layout, read_dialogues
from ..errors import ConfigError
from ..listener.distractors import DistractorMode, world
from ..listener.generation import S0 as GEN_S0
from ..listener.generation import S1 as GEN_S1
from ..listener.generation import JUDGED as GEN_JUDGED
from ..listener.generation import SCORED as GEN_SCORED
from ..listener.generation import GenerationOptions, generation_requests, judging_requests
from ..listener.ranking import SYSTEM, score_requests
from ..listener.ranking_set import load_ranking_set
from ..listener.rsa import RANKING_ALPHA, RANKING_BETA, PriorUpdate
from ..listener.units import Unit, dialogue_units, set_units
from ..roles import RoleDecl
from ..runner import Result
from ..spec_types import ResolvedSpec
from .base import Study, Summary, derive_seed


class DistractorOptions(BaseModel):
    """How the world's distractor personas are chosen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    k: int = Field(default=2, ge=1, le=20)
    """Distractor personas beside the true one."""
    choose: DistractorMode = "random"
    """'random' (seeded, from the pool without the true persona), or 'nearest' / 'farthest' by
    cosine similarity of the sheets' embeddings (roles.embedder)."""


class ListenerOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    set: str | None = "builtin"
    """The ranking set: 'builtin' (62 items written for personae), a YAML/JSON file (relative to the
    spec; layout in docs/studies/listener.md), or null for dialogues only."""
    limit: int | None = Field(default=None, ge=2)
    """Rank only the first n items of the set (the pool of distractors stays the whole set)."""
    distractors: DistractorOptions = DistractorOptions()
    """The world's distractors."""
    alpha: float = Field(default=RANKING_ALPHA, ge=0.0, le=100.0)
    """S1's weight on the listener (0 gives S0)."""
    beta: float = Field(default=RANKING_BETA, ge=0.0, le=100.0)
    """The listener's weight on S0's log-probabilities."""
    prior_update: PriorUpdate = "l0"
    """The listener's prior at each token: its posterior after the previous token ('l0') or uniform."""
    system: str = SYSTEM
    """The system prompt of each world; '{persona}' is replaced by the persona's sentences."""
    dialogues: tuple[str, ...] = ()
    """Dialogue files (PersonaChat/ConvAI2 layouts, docs/dialogues.md): rank each persona speaker's
    true next line among lines of other dialogues."""
    layout: Layout = "auto"
    """Layout of the `dialogues` files."""
    dialogue_lines: int = Field(default=20, ge=2, le=5000)
    """At most this many dialogue lines to rank (a seeded sample)."""
    dialogue_candidates: int = Field(default=4, ge=1, le=50)
    """Lines of other dialogues ranked beside the true line."""
    context_lines: int = Field(default=3, ge=1, le=50)
    """Lines of a dialogue's history given as the context."""
    n_bootstrap: int = Field(default=10_000, ge=1000)
    """Bootstrap resamples of every CI."""
    generation: GenerationOptions | None = None
    """Generation mode: greedy S0 vs S1 replies to the set's prompts, judged for contradictions and
    scored by the listener (`true` for the defaults); null for ranking only."""

    @field_validator("generation", mode="before")
    @classmethod
    def _true_is_defaults(cls, value: Any) -> Any:
        return {} if value is True else None if value is False else value

    @field_validator("system")
    @classmethod
    def _has_persona(cls, value: str) -> str:
        if "{persona}" not in value:
            raise ValueError("must contain '{persona}', where the world's persona goes")
        return value


class ListenerStudy(Study[ListenerOptions]):
    name = "listener"
    Options = ListenerOptions
    display_columns = ("model", "source", "metric", "items", "S0", "S1", "diff", "diff_ci", "better")
    roles = (RoleDecl("embedder", "embeds persona sheets to choose nearest or farthest distractors", kind="embed",
                      default="embed/minilm"),
             RoleDecl("judge", "judges generated replies against the persona (generation mode)"))

    @classmethod
    def roles_used(cls, options: Any) -> tuple[RoleDecl, ...]:
        """The embedder only for nearest/farthest distractors, the judge only in generation mode."""
        used = {"embedder": options.distractors.choose != "random", "judge": options.generation is not None}
        return tuple(r for r in cls.roles if used[r.name])

    @classmethod
    def check(cls, resolved: ResolvedSpec) -> None:
        opts: ListenerOptions = resolved.options  # type: ignore[assignment]
        if opts.generation is not None:
            if opts.set is None:
                raise ConfigError("generation mode answers the set's prompts, and 'set' is null.",
                                  field="options.generation", fix="write 'set: builtin' (or a file), or drop generation.")
            cls.require_multiseq(resolved, "generation mode (listener decoding)", "options.generation")
        if opts.set is None and not opts.dialogues:
            raise ConfigError("nothing to rank: 'set' is null and there are no 'dialogues'.", field="options.set",
                              fix="write 'set: builtin', or give dialogue files under 'dialogues:'.")
        if opts.set is not None:
            load_ranking_set(opts.set, base_dir=resolved.base_dir)
        for entry in opts.dialogues:
            read_dialogues(resolved.base_dir / entry, opts.layout)
        cls.require_scoring(resolved, "the listener study", "model")

    def describe(self) -> list[str]:
        d = self.options.distractors
        n = sum(len(u.choices) for u in self.units)
        return [f"ranks {len(self.units)} units ({n} candidates) against {d.k} {d.choose} distractor personas: "
                f"{n * (d.k + 1)} score requests per model, {n} of them under the true persona (S0)."]

    # ---------------------------------------------------------------- units and worlds
    @cached_property
    def set_items(self) -> tuple[Any, ...]:
        return () if self.options.set is None else load_ranking_set(self.options.set, base_dir=self.resolved.base_dir)

    @cached_property
    def dialogues(self) -> tuple[Dialogue, ...]:
        return tuple(d for entry in self.options.dialogues
                     for d in read_dialogues(self.resolved.base_dir / entry, self.options.layout))

    @cached_property
    def units(self) -> tuple[Unit, ...]:
        o = self.options
        items = self.set_items[: o.limit] if o.limit else self.set_items
        return set_units(items) + dialogue_units(self.dialogues, seed=self.spec.seed, limit=o.dialogue_lines,
                                                 n_others=o.dialogue_candidates, context_lines=o.context_lines)

    @cached_property
    def pools(self) -> dict[str, tuple[str, ...]]:
        """Distractor sheets per source: the set's personas; the dialogues' (then the set's, then the
        built-in set's, when the dialogues hold too few)."""
        own = tuple(dict.fromkeys(i.sheet for i in self.set_items))
        spoken = tuple(dict.fromkeys(s.sheet for d in self.dialogues for s in d.speakers if s.persona))
        fallback = own or tuple(dict.fromkeys(i.sheet for i in load_ranking_set("builtin")))
        if len(spoken) <= self.options.distractors.k:
            spoken = tuple(dict.fromkeys(spoken + fallback))
        return {"set": own, "dialogues": spoken}

    def _embed_texts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t for pool in self.pools.values() for t in pool))

    def worlds(self, done: Sequence[Result]) -> dict[tuple[str, str], tuple[str, ...]]:
        """(source, unit id) -> the world's sheets, the true one first; a unit whose true sheet has no
        embedding (nearest/farthest) is absent."""
        d = self.options.distractors
        vectors: dict[str, tuple[float, ...]] = {}
        if d.choose != "random":
            vectors = {r.request.input: r.embedding.vector for r in done
                       if r.request.kind == "embed" and r.ok and r.embedding is not None and r.request.input}
        out = {}
        for u in self.units:
            pool = [s for s in self.pools[u.source] if d.choose == "random" or s in vectors]
            if u.sheet not in pool:
                continue
            seed = derive_seed(self.spec.seed, f"listener:world:{u.source}:{u.id}")
            out[(u.source, u.id)] = world(u.sheet, pool, d.k, mode=d.choose, seed=seed,
                                          vectors=[vectors[s] for s in pool] if vectors else None)
        return out

    # ---------------------------------------------------------------- waves
    def plan(self, done: Sequence[Result]) -> list[Request]:
        needs_vectors = self.options.distractors.choose != "random"
        if needs_vectors and not any(r.request.kind == "embed" for r in done):
            model = self.role_model("embedder", self.spec.model[0])
            return [Request(kind="embed", model=model, input=t,
                            tags=Tags(item=f"sheet:{derive_seed(0, t)}", condition="pool", role="embedder"))
                    for t in self._embed_texts()]
        wave = 1 if needs_vectors else 0
        first = {"set", "dialogues", GEN_S0, GEN_S1}
        if not any(r.request.tags.condition in first for r in done):
            reqs = self._scores(done, wave=wave)
            if self.options.generation is not None:
                reqs += generation_requests(self, self.worlds(done), wave)
            return reqs
        if self.options.generation is not None and not any(r.request.tags.condition in (GEN_JUDGED, GEN_SCORED)
                                                           for r in done):
            return judging_requests(self, done, self.worlds(done), wave + 1)
        return []

    def _scores(self, done: Sequence[Result], wave: int) -> list[Request]:
        worlds = self.worlds(done)
        reqs = []
        for model in self.spec.model:
            for u in self.units:
                sheets = worlds.get((u.source, u.id))
                if sheets is not None:
                    reqs += score_requests(model, sheets, u.context, [c.text for c in u.choices],
                                           system=self.options.system,
                                           tags=Tags(item=u.id, condition=u.source, wave=wave))
        return reqs

    # ---------------------------------------------------------------- analysis
    def analyze(self, results: Sequence[Result]) -> Summary:
        from ..listener.analysis import analyze_listener, verdict_for  # noqa: PLC0415
        from ..listener.generation import analyze_generation  # noqa: PLC0415

        summary = analyze_listener(self, results)
        if self.options.generation is None:
            return summary
        rows, stats = analyze_generation(self, results)
        summary.table.extend(rows)
        summary.stats["generation"] = stats
        summary.verdict = verdict_for(summary.table, {**summary.stats,
                                                      "pairing": [*summary.stats["pairing"], *stats["pairing"]]})
        if stats["failed_replies"]:
            summary.notes.append(f"generation: {stats['failed_replies']} replies failed; their units left the "
                                 "comparison.")
        summary.notes.append("generation: " + stats["note"] + ".")
        return summary


STUDY = ListenerStudy
