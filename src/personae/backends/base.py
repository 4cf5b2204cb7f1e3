"""The backend protocol and the request/response data models every model call goes through."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import BackendError

if TYPE_CHECKING:
    from ._s1 import SequenceDecoder


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Message(_Frozen):
    """One chat message."""

    role: Literal["system", "user", "assistant"]
    """Who speaks."""
    content: str
    """What is said."""


class Sampling(_Frozen):
    """Sampling parameters; all of them are part of the cache key."""

    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    """0 means greedy."""
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    max_tokens: int = Field(default=128, ge=1, le=32768)
    """Upper bound on generated tokens."""
    seed: int | None = None
    """Sampling seed (backends that support it)."""
    stop: tuple[str, ...] = ()
    """Stop strings."""


class Tags(_Frozen):
    """Where a request sits in a study. Not part of the cache key."""

    persona: str | None = None
    """Persona id (None for the no-persona condition)."""
    item: str | None = None
    """Item or question id."""
    condition: str | None = None
    """Study condition label."""
    wave: int = 0
    """Wave number (turn of a dialogue, round of a debate)."""
    role: str | None = None
    """The study role that made this call ('judge', 'partner', ...); None for the model under study."""
    extra: dict[str, Any] = Field(default_factory=dict)
    """Anything else a study wants back with the result."""


class ListenerDecoding(_Frozen):
    """Token-level self-conscious decoding (S1, METHODS.md section 5): the reply is decoded greedily
    from S1(u_t | i0) = S0(u_t | i0) * L0(i0 | u_<=t)^alpha, normalised over the vocabulary, where
    the imaginary listener L0 tells the request's own persona i0 from the distractors."""

    distractors: tuple[str, ...] = Field(min_length=1)
    """The distractor personas' system prompts: each makes one more world, the request's messages
    with its system message replaced by this text (or one put first when it has none)."""
    alpha: float = Field(default=2.0, ge=0.0)
    """Weight of the listener; 0 decodes plain greedy S0."""
    beta: float = Field(default=0.5, ge=0.0)
    """Sharpness of the listener's view of S0: log L0 = beta * log S0 + log prior - normaliser."""
    prior_update: Literal["l0", "uniform"] = "l0"
    """The listener's prior over worlds at the next token: its posterior after the chosen token
    ('l0'), or uniform at every token ('uniform')."""


KEY_VERSION = 2
"""Version of the cache-key recipe. Version 1 hashed every field; version 2 hashes the fields that
differ from their defaults (so a new optional field leaves existing keys alone), this version and
the backend's fingerprint. Bump it only when the recipe changes; keys of another version are never
looked up."""


_KEY_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""The canonical JSON of cache keys, built once (`json.dumps` with keywords builds one per call)."""


class Request(_Frozen):
    """One model call: generate a reply, score a continuation, or embed a text."""

    kind: Literal["generate", "score", "embed"] = "generate"
    """'generate' a reply, 'score' the log-probability of `continuation`, or 'embed' `input`."""
    model: str
    """Model id, e.g. 'local/smollm2-135m'."""
    messages: tuple[Message, ...] = ()
    """Chat messages. Empty when `prompt` is used."""
    prompt: str | None = None
    """Raw text prompt (no chat template), instead of messages."""
    continuation: str | None = None
    """For kind='score': the text whose log-probability is wanted."""
    per_token: bool = False
    """For kind='score': also return per-token log-probabilities."""
    sampling: Sampling = Sampling()
    """Sampling parameters."""
    json_schema: dict[str, Any] | None = None
    """Constrain the output to JSON matching this schema."""
    grammar: str | None = None
    """Constrain the output with a GBNF grammar (llama.cpp backends)."""
    replicate: int = Field(default=0, ge=0)
    """Replicate index: repeats are distinct requests and never collapse in the cache."""
    persona_version: int | None = None
    """Version of the persona in the prompt; bumping it invalidates the cache."""
    input: str | None = None
    """For kind='embed': the text to embed."""
    decoding: ListenerDecoding | None = None
    """Decode the reply with the imaginary listener (backends with `supports_multiseq`); None
    decodes as usual. Part of the cache key when set."""
    tags: Tags = Tags()
    """Study bookkeeping, returned with the result; not part of the cache key."""

    def key_payload(self) -> dict[str, Any]:
        """The fields that change the output and differ from their defaults (tags never do): the
        dict ``self.model_dump(mode="json", exclude={"tags"}, exclude_defaults=True)`` gives.

        Written out rather than asked of pydantic, for speed: that dump compares the whole sampling
        model with its default on every call, and a cached re-run of a large grid computes one key
        per request (~5x faster this way; a property test holds the two equal)."""
        if type(self) is not Request:  # a subclass's own fields: pydantic knows them
            return self.model_dump(mode="json", exclude={"tags"}, exclude_defaults=True)
        d = self.__dict__
        out = {name: d[name] for name, default in _REQUEST_SCALARS if d[name] != default}
        if d["messages"]:
            out["messages"] = [dict(_message_key(m)) for m in d["messages"]]
        sampling = _flat_nondefault(d["sampling"])
        if sampling:
            out["sampling"] = sampling
        if d["json_schema"] is not None or d["decoding"] is not None:  # rare: pydantic dumps them
            out.update(self.model_dump(mode="json", include={"json_schema", "decoding"}, exclude_defaults=True))
        return {name: out[name] for name in _REQUEST_ORDER if name in out}

    def cache_key(self, fingerprint: str = "") -> str:
        """sha256 of canonical JSON: key version, the backend's fingerprint, and `key_payload()`.

        The runner passes the fingerprint of the backend that answers (model file identity, server
        URL, ...), so the same model id behind two servers never shares results. Without one
        (`fingerprint=""`) the key identifies the request's content alone.
        """
        payload = {"v": KEY_VERSION, "backend": fingerprint, "request": self.key_payload()}
        canonical = _KEY_JSON.encode(payload)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def last_user(self) -> str:
        for m in reversed(self.messages):
            if m.role == "user":
                return m.content
        return self.prompt or ""


_REQUEST_ORDER = tuple(Request.model_fields)
_REQUEST_SCALARS = tuple((name, Request.model_fields[name].default) for name in _REQUEST_ORDER
                         if name not in {"tags", "messages", "sampling", "json_schema", "decoding"})
"""Request's fields of plain values (str, int, bool, None) and their defaults, for key_payload."""


_REQUIRED = object()
_DEFAULTS: dict[type, dict[str, Any]] = {}


def _flat_nondefault(model: BaseModel) -> dict[str, Any]:
    """A model of plain fields (Sampling, Message) as ``model_dump(mode="json", exclude_defaults=True)``
    gives it: the fields that differ from their defaults, tuples as lists."""
    defaults = _DEFAULTS.get(type(model))
    if defaults is None:
        defaults = _DEFAULTS[type(model)] = {name: _REQUIRED if f.is_required() else f.default
                                             for name, f in type(model).model_fields.items()}
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in model.__dict__.items() if value is not defaults[name] and value != defaults[name]}


_MESSAGE_KEYS: dict[int, tuple[Message, dict[str, Any]]] = {}


def _message_key(message: Message) -> dict[str, Any]:
    """A message's part of the cache key, dumped once per message object (a grid's requests share
    one system message per persona and one question per item). The entry holds the message, so
    its id is not reused while it is there."""
    hit = _MESSAGE_KEYS.get(id(message))
    if hit is not None and hit[0] is message:
        return hit[1]
    if len(_MESSAGE_KEYS) >= 8192:
        _MESSAGE_KEYS.clear()
    dumped = _flat_nondefault(message)
    _MESSAGE_KEYS[id(message)] = (message, dumped)
    return dumped


class Generation(_Frozen):
    """A generated reply."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    forward_passes: int | None = None
    """Batched model evaluations the reply took, when the backend counts them (listener decoding)."""
    tokens_evaluated: int | None = None
    """Token positions evaluated across all sequences (prompts included), when counted."""


class Score(_Frozen):
    """Log-probability of a continuation given the prompt (natural log)."""

    logprob: float
    """Sum of the continuation's token log-probabilities."""
    n_tokens: int
    """Number of continuation tokens."""
    token_logprobs: tuple[float, ...] | None = None
    """Per-token log-probabilities, when asked for."""
    tokens: tuple[str, ...] | None = None
    """The continuation's tokens, when asked for."""
    latency_s: float = 0.0


class Embedding(_Frozen):
    """A text's embedding vector."""

    vector: tuple[float, ...]
    """The vector (unit length for the shipped embedders)."""
    latency_s: float = 0.0


class Backend(ABC):
    """A model behind one async interface. Only `generate` is required."""

    provider: ClassVar[str] = ""
    supports_scoring: bool = False
    """Can return log-probabilities of a given continuation."""
    supports_logits: bool = False
    """Can return next-token logits (local backends)."""
    supports_json: bool = False
    """Can constrain output to a JSON schema."""
    supports_grammar: bool = False
    """Can constrain output with a GBNF grammar."""
    supports_seed: bool = False
    """Honours `sampling.seed`."""
    supports_generation: bool = True
    """Can generate text (embedding-only backends cannot)."""
    supports_embedding: bool = False
    """Can embed texts (`embed`)."""
    supports_multiseq: bool = False
    """Can decode several prompts in lockstep with next-token log-probabilities (`multiseq`), and so
    run listener decoding (`Request.decoding`)."""
    embed_batch_size: int = 64
    """Texts per `embed` call."""
    max_concurrency: int | None = None
    """Upper bound on useful concurrency (1 for an in-process model)."""
    adaptive_concurrency: bool = False
    """The executor adapts the requests in flight to this backend (AIMD: halved on 429/503, grown
    while latency holds), between 1 and the run's concurrency (HTTP servers)."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    @abstractmethod
    async def generate(self, request: Request) -> Generation:
        """Generate a reply."""

    async def score(self, request: Request) -> Score:
        """Log-probability of `request.continuation`."""
        raise BackendError(
            f"backend '{self.model_id}' cannot score text.", backend=self.model_id,
            fix="use a backend with scoring: local/..., or openai/... with scoring: prompt_logprobs (vLLM).",
        )

    async def embed(self, requests: list[Request]) -> list[Embedding]:
        """Embeddings of `request.input` for a batch of kind='embed' requests, in order."""
        raise BackendError(f"backend '{self.model_id}' cannot embed text.", backend=self.model_id,
                           fix="use an embedder, e.g. embed/minilm.")

    def multiseq(self, prompts: Sequence[Sequence[Message]], max_new_tokens: int = 128) -> SequenceDecoder:
        """A lockstep decoder over these chat prompts (one sequence each); close it when done."""
        raise BackendError(f"backend '{self.model_id}' cannot decode several sequences in lockstep.",
                           backend=self.model_id,
                           fix="use a backend with supports_multiseq (local/..., or fake/... in tests), or drop "
                           "'decoding'.")

    async def prepare(self, requests: list[Request]) -> None:
        """Called with a wave's requests for this backend before any is sent (e.g. to size a local
        model's context for the longest prompt); raise a ConfigError to stop before any call."""

    def fingerprint(self) -> str:
        """What identifies the model behind this backend beyond its id (part of every cache key):
        for a local model the file's identity and adapter, for a server its URL and scoring mode.
        Never holds secrets. Default: the provider and model id."""
        return f"{self.provider}:{self.model_id}"

    async def aclose(self) -> None:
        """Release connections or models."""

    def capabilities(self) -> dict[str, bool]:
        return {
            "scoring": self.supports_scoring,
            "logits": self.supports_logits,
            "json": self.supports_json,
            "grammar": self.supports_grammar,
            "seed": self.supports_seed,
            "embedding": self.supports_embedding,
            "multiseq": self.supports_multiseq,
        }

    def describe(self) -> dict[str, Any]:
        """What run.json records about this backend (never secrets)."""
        return {"model": self.model_id, "provider": self.provider, "capabilities": self.capabilities(),
                "fingerprint": self.fingerprint()}
