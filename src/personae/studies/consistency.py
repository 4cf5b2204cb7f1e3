"""consistency: does a character hold over a long dialogue, without parroting its sheet?

METHODS.md section 4 (arXiv 2511.00222; arXiv 2506.11557). The study simulates dialogues (a
persona agent and a partner, one line per wave) or reads dialogues made elsewhere
(`options.dialogues`), then scores each evaluated speaker's lines:

- prompt-to-line, line-to-line and Q&A through the generic judge, k repeats, with self-agreement;
- the judge-free listener metric: the posterior of the speaker's true persona given each line,
  against k distractor personas, from log-probabilities (`score`) of the `scorer` role;
- judge validity: can the judge name which persona said a line (PersonaEval: the best LLM judge
  69%, humans 91%)? Reported with its chance level and a warning near it;
- parroting: copy score, relevance and a joint score that does not reward restating the sheet;
- drift (onset and slope per metric) and pass^k over replicate dialogues.

Waves: lines 0 .. 2*turns-1 (simulation), then one wave of judge, scorer and embedder requests,
then one wave of Q&A answers (they need the judge's questions).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..backends.base import ListenerDecoding, Message, Request, Sampling, Tags
from ..consistency import judging as J
from ..consistency.analysis import analyze_consistency
from ..consistency.simulate import (AGENT, Slot, State, agent_history, line_index, partner_messages,
                                    persona_sheet, requests_for_wave, slot_tags, state_of, to_dialogue)
from ..dialogue import Dialogue, Layout, Line, read_dialogues
from ..errors import ConfigError
from ..judge import Judge, JudgeOptions
from ..listener.distractors import sample_others
from ..persona import builtin_personas
from ..roles import RoleDecl
from ..runner import Result
from ..spec_types import ResolvedSpec
from .base import Study, Summary, derive_seed

Metric = Literal["prompt_to_line", "line_to_line", "qa", "listener", "parroting"]
ALL_METRICS: tuple[Metric, ...] = ("prompt_to_line", "line_to_line", "qa", "listener", "parroting")
PHASE_B_ROLES = {"judge", "scorer", "embedder"}


class PartnerOptions(BaseModel):
    """Who the agent talks with: a scripted list of lines, or a user simulator with a persona."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    script: tuple[str, ...] | None = None
    """The partner's lines in order (one per exchange; no model calls). At least `turns` lines."""
    persona: str = ("You are a curious person meeting someone new; you ask about their life, work, habits and "
                    "opinions, one question at a time.")
    """The user simulator's persona (played by `roles.partner`) when there is no script."""


class ListenerOption(BaseModel):
    """The agent decodes with the imaginary listener (METHODS.md section 5; needs a backend that
    decodes several sequences in lockstep: local/...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    distractors: int = Field(default=2, ge=1, le=10)
    """Distractor personas (seeded per dialogue from the study's personas and the built-in library)."""
    alpha: float = Field(default=2.0, ge=0.0)
    beta: float = Field(default=0.5, ge=0.0)
    prior_update: Literal["l0", "uniform"] = "l0"
    compare: bool = True
    """Also run every dialogue with greedy decoding without the listener (arm 'greedy'), so drift with and
    without the listener is compared in one run; false runs the 'listener' arm only."""


class DecodingOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    listener: ListenerOption
    """Listener decoding of the agent's lines."""


class ConsistencyOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    turns: int = Field(default=10, ge=1, le=200)
    """Agent lines per simulated dialogue (each answers one partner line)."""
    partner: PartnerOptions = PartnerOptions()
    """The agent's partner."""
    decoding: DecodingOptions | None = None
    """How the agent decodes: `{listener: {...}}` for the imaginary listener (greedy); default the
    spec's sampling."""
    reminder: str | None = "Reply in one or two sentences, in character."
    """Appended to every partner line the agent sees (keeps replies short); null for none."""
    dialogues: tuple[str, ...] = ()
    """Files of dialogues made elsewhere (docs/dialogues.md): score them, simulate nothing."""
    layout: Layout = "auto"
    """Layout of `dialogues` files."""
    speakers: tuple[str, ...] = ()
    """Speakers of imported dialogues to score (default: every speaker with a persona sheet)."""
    metrics: tuple[Metric, ...] = ALL_METRICS
    """What to measure."""
    judge: JudgeOptions = JudgeOptions(repeats=2, max_tokens=64)
    """Verdicts per judged line (>= 2 reports self-agreement), temperature and room of each."""
    qa_every: int = Field(default=4, ge=1)
    """Q&A checkpoints: after every n-th line of the speaker (and after its last)."""
    distractors: int = Field(default=3, ge=1, le=20)
    """Distractor personas beside the true one (listener metric and judge validity)."""
    validity_lines: int = Field(default=20, ge=0, le=500)
    """Lines the judge must attribute to their speaker (0: skip the check)."""
    stay_threshold: float = Field(default=0.9, ge=0.0, le=1.0)
    """A dialogue 'stays in character' when its prompt-to-line score is at least this (pass^k)."""

    @model_validator(mode="after")
    def _script_long_enough(self) -> ConsistencyOptions:
        if self.partner.script is not None and len(self.partner.script) < self.turns:
            raise ValueError(f"partner.script holds {len(self.partner.script)} lines; turns: {self.turns} needs "
                             f"{self.turns}")
        return self


class ConsistencyStudy(Study[ConsistencyOptions]):
    name = "consistency"
    Options = ConsistencyOptions
    display_columns = ("persona", "dialogues", "complete", "prompt_to_line", "line_to_line", "qa", "listener",
                       "parroting_rate", "joint", "stays_in_character", "drift_onset")
    roles = (RoleDecl("partner", "plays the user simulator the agent talks with",
                      self_note="The {role} ({purpose}) is the model under study: it talks with itself. Bind "
                      "roles.{role} to another model for a partner it cannot predict."),
             RoleDecl("judge", "judges lines against the persona and earlier lines, writes and checks Q&A"),
             RoleDecl("scorer", "scores lines under the true and distractor personas (listener metric)",
                      needs_scoring=True,
                      self_note="The {role} ({purpose}) is the model under study: the listener posterior says how "
                      "well the model itself tells its persona from the distractors in its own lines."),
             RoleDecl("embedder", "embeds lines and persona sentences (parroting)", kind="embed",
                      default="embed/minilm"))

    @classmethod
    def roles_used(cls, options: Any) -> tuple[RoleDecl, ...]:
        """The partner only simulates without a script, the scorer only serves the listener metric, the
        embedder only parroting, the judge every judged metric and the validity check."""
        o: ConsistencyOptions = options
        judged = {"prompt_to_line", "line_to_line", "qa"} & set(o.metrics) or o.validity_lines
        used = {"partner": not o.dialogues and o.partner.script is None, "judge": bool(judged),
                "scorer": "listener" in o.metrics, "embedder": "parroting" in o.metrics}
        return tuple(r for r in cls.roles if used[r.name])

    @classmethod
    def check(cls, resolved: ResolvedSpec) -> None:
        opts: ConsistencyOptions = resolved.options  # type: ignore[assignment]
        if opts.dialogues:
            for entry in opts.dialogues:
                read_dialogues(resolved.base_dir / entry, opts.layout)
        elif not resolved.personas:
            raise ConfigError("a consistency study needs personas to simulate, or 'options.dialogues' to score.",
                              field="personas", fix="add e.g. 'personas: [builtin:pirate-captain]'.")
        if opts.decoding is not None and not opts.dialogues:
            cls.require_multiseq(resolved, "listener decoding", "options.decoding")

    # ---------------------------------------------------------------- what is studied
    @cached_property
    def slots(self) -> tuple[Slot, ...]:
        if self.options.dialogues:
            return ()
        return tuple(Slot(m, p, r, arm) for m in self.spec.model for p in self.personas
                     for r in range(self.spec.replicates) for arm in self.arms)

    @property
    def arms(self) -> tuple[str, ...]:
        dec = self.options.decoding
        if dec is None:
            return ("plain",)
        return ("greedy", "listener") if dec.listener.compare else ("listener",)

    @cached_property
    def imported(self) -> tuple[Dialogue, ...]:
        """Every dialogue of the files, each tagged with its source (`metadata['model']` when the file
        names one, else the file's name: the paper ships one file per model), ids made unique."""
        out: list[Dialogue] = []
        seen: set[str] = set()
        for entry in self.options.dialogues:
            path = self.resolved.base_dir / entry
            for d in read_dialogues(path, self.options.layout):
                meta = {**d.metadata, "source": str(d.metadata.get("model") or path.stem)}
                did = d.id if d.id not in seen else f"{path.stem}:{d.id}"
                seen.add(did)
                out.append(d.model_copy(update={"id": did, "metadata": meta}))
        return tuple(out)

    @property
    def n_lines(self) -> int:
        return 2 * self.options.turns

    def states(self, done: Sequence[Result]) -> dict[str, State]:
        index = line_index(done)
        return {s.id: state_of(s, self.n_lines, self.options.partner.script, index) for s in self.slots}

    def dialogues(self, done: Sequence[Result]) -> list[Dialogue]:
        if self.options.dialogues:
            return list(self.imported)
        states = self.states(done)
        sheet = () if self.options.partner.script is not None else (self.options.partner.persona,)
        return [to_dialogue(s, states[s.id], sheet) for s in self.slots]

    def evaluated(self, d: Dialogue) -> list[str]:
        if not self.options.dialogues:
            return [AGENT]
        wanted = self.options.speakers or tuple(s.id for s in d.speakers if s.persona)
        return [s for s in wanted if s in {x.id for x in d.speakers}]

    def studied_model(self, d: Dialogue) -> str:
        return str(d.metadata.get("model", self.spec.model[0])) if not self.options.dialogues else self.spec.model[0]

    # ---------------------------------------------------------------- judges
    @cached_property
    def p2l_judge(self) -> Judge[J.PromptToLine]:
        return Judge.from_options(J.PromptToLine, J.PROMPT_TO_LINE, self.options.judge)

    @cached_property
    def l2l_judge(self) -> Judge[J.LineToLine]:
        o = self.options.judge
        return Judge(J.LineToLine, J.LINE_TO_LINE, repeats=o.repeats, temperature=o.temperature,
                     max_tokens=max(o.max_tokens, 64))

    @cached_property
    def qa_writer(self) -> Judge[J.Questions]:
        return Judge(J.Questions, J.WRITE_QUESTIONS, repeats=1, temperature=0.0, max_tokens=900)

    @cached_property
    def validity_judge(self) -> Judge[Any]:
        o = self.options.judge
        return Judge(J.who_speaks_verdict(self.options.distractors + 1), J.WHO_SPEAKS, repeats=o.repeats,
                     temperature=o.temperature, max_tokens=32)

    # ---------------------------------------------------------------- waves
    def plan(self, done: Sequence[Result]) -> list[Request]:
        if self.slots:
            wave = requests_for_wave(self.slots, self.states(done), make_agent=self._agent_request,
                                     make_partner=self._partner_request)
            if wave:
                return wave
        dialogues = self.dialogues(done)
        if not any(r.request.tags.role in PHASE_B_ROLES for r in done):
            reqs = self._phase_b(dialogues)
            if reqs:
                return reqs
        if "qa" in self.options.metrics and not any(r.request.tags.role == "qa" for r in done):
            return self._qa_answers(dialogues, done)
        return []

    def _agent_request(self, slot: Slot, st: State) -> Request:
        t = st.next_line or 0
        tags = slot_tags(slot, t, None)
        history = agent_history(st.said, self.options.reminder)
        if slot.arm == "plain":
            return self.chat_request(slot.model, slot.persona, history, replicate=slot.replicate, tags=tags)
        greedy = self.spec.sampling.model_copy(update={"temperature": 0.0, "top_p": 1.0})
        extra = {"decoding": self._listener_decoding(slot)} if slot.arm == "listener" else {}
        return self.chat_request(slot.model, slot.persona, history, replicate=slot.replicate, tags=tags,
                                 sampling=greedy, **extra)

    def _listener_decoding(self, slot: Slot) -> ListenerDecoding:
        """The slot's distractors: personas other than its own, seeded per dialogue, rendered like its own."""
        opt = self.options.decoding.listener  # type: ignore[union-attr]
        candidates = list({**{p.id: p for p in self.personas}, **builtin_personas()}.values())
        picked = sample_others(slot.persona.id, candidates, opt.distractors,
                               derive_seed(self.spec.seed, f"distractors:{slot.model}|{slot.persona.id}|{slot.replicate}"))
        return ListenerDecoding(distractors=tuple(self._system(q)[1] for q in picked), alpha=opt.alpha, beta=opt.beta,
                                prior_update=opt.prior_update)

    def _partner_request(self, slot: Slot, st: State) -> Request:
        t = st.next_line or 0
        msgs = partner_messages(st.said, self.options.partner.persona)
        return Request(model=self.role_model("partner", slot.model), messages=tuple(msgs),
                       sampling=self.sampling_for(slot.replicate, tags=slot_tags(slot, t, "partner")),
                       replicate=slot.replicate, tags=slot_tags(slot, t, "partner"))

    def _lines(self, dialogues: Sequence[Dialogue]) -> list[tuple[Dialogue, Line]]:
        return [(d, x) for d in dialogues for s in self.evaluated(d) for x in d.lines_of(s)]

    def _tags(self, d: Dialogue, line: Line | None, metric: str, wave: int, **extra: Any) -> Tags:
        turn = line.turn if line is not None else -1
        speaker = line.speaker if line is not None else extra.pop("speaker", "")
        return Tags(persona=str(d.metadata.get("persona") or speaker), item=f"{d.id}#{turn}", condition=metric,
                    wave=wave, extra={"dialogue": d.id, "turn": turn, "speaker": speaker, "metric": metric,
                                      "model": self.studied_model(d), **extra})

    def _phase_b(self, dialogues: Sequence[Dialogue]) -> list[Request]:
        metrics, wave = set(self.options.metrics), self.n_lines if self.slots else 0
        reqs: list[Request] = []
        lines = self._lines(dialogues)
        for d, x in lines:
            judge_model = self.role_model("judge", self.studied_model(d))
            if "prompt_to_line" in metrics:
                content = J.prompt_to_line_content(d, x)
                reqs += self.p2l_judge.requests(judge_model, content, seed=derive_seed(self.spec.seed, content),
                                                tags=self._tags(d, x, "prompt_to_line", wave))
            if "line_to_line" in metrics and any(y.turn < x.turn for y in d.lines_of(x.speaker)):
                content = J.line_to_line_content(d, x)
                reqs += self.l2l_judge.requests(judge_model, content, seed=derive_seed(self.spec.seed, content),
                                                tags=self._tags(d, x, "line_to_line", wave))
        if "qa" in metrics:
            seen: set[str] = set()
            for d in dialogues:
                for s in self.evaluated(d):
                    sheet = d.speaker(s).sheet
                    if sheet and sheet not in seen:
                        seen.add(sheet)
                        reqs += self.qa_writer.requests(
                            self.role_model("judge", self.studied_model(d)), J.questions_content(sheet),
                            seed=derive_seed(self.spec.seed, sheet),
                            tags=Tags(item=f"qa:{derive_seed(0, sheet)}", condition="qa_questions", wave=wave,
                                      extra={"sheet": sheet}))
        if "listener" in metrics:
            reqs += self._listener(lines, wave)
        if self.options.validity_lines:
            reqs += self._validity(lines, wave)
        if "parroting" in metrics:
            reqs += self._embeddings(dialogues, wave)
        return reqs

    # ---------------------------------------------------------------- distractors
    @cached_property
    def pool(self) -> tuple[str, ...]:
        """Persona sheets to draw distractors from: the study's own, then the built-in library."""
        own = [" ".join(persona_sheet(p)) for p in self.personas]
        own += [d.speaker(s).sheet for d in self.imported for s in self.evaluated(d)]
        library = [" ".join(persona_sheet(p)) for p in builtin_personas().values()]
        return tuple(dict.fromkeys(x for x in own + library if x))

    def candidates(self, d: Dialogue, line: Line) -> tuple[list[str], int]:
        """The true sheet and k distractors in a seeded order, and the true one's position."""
        true = d.speaker(line.speaker).sheet
        others = [s for s in self.pool if s != true]
        rng = random.Random(derive_seed(self.spec.seed, f"{d.id}#{line.turn}"))
        picked = rng.sample(others, min(self.options.distractors, len(others))) + [true]
        rng.shuffle(picked)
        return picked, picked.index(true)

    @staticmethod
    def _speaker_view(d: Dialogue, speaker: str, until: int) -> list[Message]:
        """Lines before turn `until` as `speaker` saw them (its own as the assistant's), opening with
        a user message as chat templates require."""
        msgs = [Message(role="assistant" if y.speaker == speaker else "user", content=y.text)
                for y in d.before(until)]
        return msgs if msgs and msgs[0].role == "user" else [Message(role="user", content=J_OPENING), *msgs]

    def _listener(self, lines: Sequence[tuple[Dialogue, Line]], wave: int) -> list[Request]:
        reqs = []
        for d, x in lines:
            sheets, true = self.candidates(d, x)
            history = self._speaker_view(d, x.speaker, x.turn)
            for i, sheet in enumerate(sheets):
                reqs.append(Request(kind="score", model=self.role_model("scorer", self.studied_model(d)),
                                    messages=(Message(role="system", content=f"Your persona: {sheet}"), *history),
                                    continuation=x.text,
                                    tags=self._tags(d, x, "listener", wave, candidate=i, true=true).model_copy(
                                        update={"role": "scorer"})))
        return reqs

    def _validity(self, lines: Sequence[tuple[Dialogue, Line]], wave: int) -> list[Request]:
        rng = random.Random(derive_seed(self.spec.seed, "validity"))
        chosen = rng.sample(list(lines), min(self.options.validity_lines, len(lines)))
        reqs = []
        for d, x in chosen:
            sheets, true = self.candidates(d, x)
            content = J.who_speaks_content(sheets, x.text)
            reqs += self.validity_judge.requests(self.role_model("judge", self.studied_model(d)), content,
                                                 seed=derive_seed(self.spec.seed, content),
                                                 tags=self._tags(d, x, "validity", wave, true=J.LETTERS[true],
                                                                 n=len(sheets)))
        return reqs

    def _embeddings(self, dialogues: Sequence[Dialogue], wave: int) -> list[Request]:
        texts: dict[str, None] = {}
        for d in dialogues:
            for s in self.evaluated(d):
                texts.update(dict.fromkeys(d.speaker(s).persona))
            texts.update(dict.fromkeys(x.text for x in d.lines))
        model = self.role_model("embedder", self.spec.model[0])
        return [Request(kind="embed", model=model, input=t,
                        tags=Tags(item=f"embed:{derive_seed(0, t)}", condition="parroting", wave=wave,
                                  role="embedder"))
                for t in texts if t.strip()]

    # ---------------------------------------------------------------- Q&A answers
    def _qa_answers(self, dialogues: Sequence[Dialogue], done: Sequence[Result]) -> list[Request]:
        written = {}
        for item in self.qa_writer.collect([r for r in done if r.request.tags.condition == "qa_questions"]).items:
            agg = self.qa_writer.aggregate(item)
            if agg is not None and item.verdicts[0] is not None:
                written[item.tags.extra["sheet"]] = item.verdicts[0].questions
        schema = J.Answer.model_json_schema()
        reqs = []
        for d in dialogues:
            for s in self.evaluated(d):
                questions = written.get(d.speaker(s).sheet)
                if not questions:
                    continue
                own = d.lines_of(s)
                checkpoints = sorted({own[i].turn for i in range(len(own)) if (i + 1) % self.options.qa_every == 0}
                                     | ({own[-1].turn} if own else set()))
                sheet = d.speaker(s).sheet
                asked = [(q_i, J.shuffled(q, derive_seed(self.spec.seed, f"{sheet}#{q_i}")))
                         for q_i, q in enumerate(questions) if J.usable(q)]
                for turn in checkpoints:
                    history = self._speaker_view(d, s, turn + 1)
                    for q_i, q in asked:
                        msgs = [*history, Message(role="user", content=J.answer_prompt(q))]
                        tags = self._tags(d, None, "qa", (self.n_lines if self.slots else 0) + 1, speaker=s,
                                          checkpoint=turn, question=q_i, key=q.key).model_copy(update={"role": "qa"})
                        reqs.append(self._answer_request(d, s, msgs, tags, schema))
        return reqs

    def _answer_request(self, d: Dialogue, speaker: str, msgs: list[Message], tags: Tags,
                        schema: dict[str, Any]) -> Request:
        sampling = Sampling(temperature=0.0, max_tokens=16)
        if not self.options.dialogues:
            slot = next(s for s in self.slots if s.id == d.id)
            return self.chat_request(slot.model, slot.persona, msgs, replicate=slot.replicate, tags=tags,
                                     sampling=sampling, json_schema=schema)
        sp = d.speaker(speaker)
        system = Message(role="system", content=f"You are {sp.name or speaker}. Your persona: {sp.sheet}")
        return Request(model=self.studied_model(d), messages=(system, *msgs), sampling=sampling, json_schema=schema,
                       tags=tags)

    # ---------------------------------------------------------------- analysis
    def analyze(self, results: Sequence[Result]) -> Summary:
        return analyze_consistency(self, results)

    def figures(self, results: Sequence[Result], summary: Summary) -> list[tuple[str, Any]]:
        from ..report.plots import curves  # noqa: PLC0415

        out = []
        for group, by_metric in (summary.stats.get("drift") or {}).items():
            tested = [(m, d) for m, d in by_metric.items() if d]
            if tested:
                fig = curves([(m, d["curve"], d["curve_ci"]) for m, d in tested], onsets=[d["onset"] for _, d in tested],
                             xlabel="the character's line", ylabel="score (mean over dialogues, 95% CI)")
                out.append((f"Drift per metric: {group.replace('|', ', ')} (dotted: onset)", fig))
        return out


J_OPENING = "Hello."
STUDY = ConsistencyStudy
