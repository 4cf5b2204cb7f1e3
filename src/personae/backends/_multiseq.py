"""Lockstep decoding of several prompts in one llama.cpp context (llama-cpp-python's low-level API).

The longest common token prefix is evaluated once in sequence 0 and copied to the others
(`llama_memory_seq_cp`); each sequence's remaining suffix goes in one batch; then every step
appends one token to every sequence in one batch and returns next-token log-probabilities
[n_seq, vocab] (log-softmax of `llama_get_logits_ith`).

The context reuses an already loaded `Llama`'s model (the weights are never loaded twice) and copies
that `Llama`'s context parameters (threads, flash attention off, KV types), changing only n_ctx and
n_seq_max. The KV cache is per sequence (`kv_unified = False`): with a unified cache this
llama.cpp build returned logits off by up to 0.9 nats for every sequence but the first, while
per-sequence streams match a single-sequence context fed the same tokens bit for bit.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from ..errors import BackendError

_CTX_STEP = 256
_C = TypeVar("_C", bound="_LlamaContext")


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    m = logits.max(axis=-1, keepdims=True)
    z = logits - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def common_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix shared by every prompt."""
    n = 0
    for column in zip(*prompts):
        if any(t != column[0] for t in column):
            break
        n += 1
    return n


class _LlamaContext:
    """A llama.cpp context of n_seq per-sequence KV streams on an already loaded `Llama`'s model."""

    def __init__(self, llama: Any, *, n_seq: int, n_ctx: int, model_id: str) -> None:
        import llama_cpp  # noqa: PLC0415

        self._ctx: Any = None
        self._batch: Any = None
        self._lib = llama_cpp
        self._llama = llama  # keeps the model alive as long as this context
        self.model_id = model_id
        self.n_seq = n_seq
        self.forward_passes = 0
        self.tokens_evaluated = 0
        params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_seq_max = n_seq
        params.kv_unified = False
        params.n_ctx = n_ctx
        self._n_batch = max(int(params.n_batch), n_seq)
        params.n_batch = params.n_ubatch = self._n_batch
        self._ctx = llama_cpp.llama_init_from_model(llama._model.model, params)
        if self._ctx is None:
            raise BackendError(f"llama.cpp could not create a context of {n_ctx} tokens for {n_seq} sequence(s).",
                               backend=model_id, fix="lower max_tokens, the number of distractors or backend.n_ctx.")
        adapter = getattr(llama, "_lora_adapter", None)
        if adapter is not None:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
            scales = (ctypes.c_float * 1)(llama.lora_scale)
            if llama_cpp.llama_set_adapters_lora(self._ctx, adapters, 1, scales):
                self.close()
                raise BackendError("could not apply the LoRA adapter to a llama.cpp context.",
                                   backend=model_id, fix="check backend.lora.")
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._vocab = llama_cpp.llama_model_get_vocab(llama._model.model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)

    # ------------------------------------------------------------ low level
    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> dict[int, np.ndarray]:
        """Evaluate (token, position, seq, wants_logits) entries in batches of n_batch; the
        log-probabilities of each entry that wants them, by its index in `entries`."""
        if self._ctx is None:
            raise BackendError("this llama.cpp context is closed.", backend=self.model_id,
                               fix="open a new one (backend.multiseq(...)).")
        out: dict[int, np.ndarray] = {}
        b = self._batch
        for lo in range(0, len(entries), self._n_batch):
            chunk = entries[lo : lo + self._n_batch]
            b.n_tokens = len(chunk)
            for j, (tok, pos, seq, logits) in enumerate(chunk):
                b.token[j] = tok
                b.pos[j] = pos
                b.n_seq_id[j] = 1
                b.seq_id[j][0] = seq
                b.logits[j] = logits
            rc = self._lib.llama_decode(self._ctx, b)
            if rc != 0:
                raise BackendError(f"llama_decode returned {rc} for {len(chunk)} tokens over {self.n_seq} sequences.",
                                   backend=self.model_id, fix="lower max_tokens or the number of distractors.")
            self.forward_passes += 1
            self.tokens_evaluated += len(chunk)
            for j, (_, _, _, logits) in enumerate(chunk):
                if logits:
                    row = np.ctypeslib.as_array(self._lib.llama_get_logits_ith(self._ctx, j), shape=(self.n_vocab,))
                    out[lo + j] = _log_softmax(row)  # float32, as llama.cpp computes them
        return out

    def close(self) -> None:
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            self._lib.llama_free(self._ctx)
            self._ctx = None

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown: llama_cpp may be gone already)
            pass


class LlamaMultiSeq(_LlamaContext):
    """N prompts decoded in lockstep in one context; implements `_s1.SequenceDecoder`.

    A decoder can be used again (`restart`) for the next request with as many sequences: each
    sequence keeps the KV of what it evaluated, so a world whose new prompt extends its last one (the
    next turn of a chat) evaluates only the new tokens.
    """

    def __init__(self, llama: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
                 model_id: str = "local", min_capacity: int = 0) -> None:
        per_seq = self._per_seq(llama, prompts, max_new_tokens, model_id)
        n = len(prompts)  # the context is split evenly between the sequences
        trained = int(llama._model.n_ctx_train()) or per_seq
        capacity = min(max(-(-per_seq // _CTX_STEP) * _CTX_STEP, min_capacity), max(trained, per_seq))
        super().__init__(llama, n_seq=n, n_ctx=n * capacity, model_id=model_id)
        self.capacity = capacity
        self._held: list[list[int]] = [[] for _ in range(n)]  # the tokens whose KV each sequence holds
        self.prompts = [list(p) for p in prompts]

    @staticmethod
    def _per_seq(llama: Any, prompts: Sequence[Sequence[int]], max_new_tokens: int, model_id: str) -> int:
        if not prompts or any(len(p) == 0 for p in prompts):
            raise BackendError("multi-sequence decoding needs at least one prompt, none of them empty.",
                               backend=model_id, fix="give every sequence a non-empty prompt.")
        per_seq = max(len(p) for p in prompts) + max_new_tokens + 1
        trained = int(llama._model.n_ctx_train()) or per_seq
        if per_seq > trained:
            raise BackendError(f"a world's prompt plus max_tokens is {per_seq} tokens, over the {trained} the model "
                               "was trained on.", backend=model_id, fix="shorten the chat or lower max_tokens.")
        return per_seq

    def fits(self, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> bool:
        """Whether `restart` can take these prompts (as many sequences, each within the capacity)."""
        return (self._ctx is not None and len(prompts) == self.n_seq
                and self._per_seq(self._llama, prompts, max_new_tokens, self.model_id) <= self.capacity)

    def restart(self, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> None:
        """Take the next request's prompts; `start` then evaluates only what each sequence lacks."""
        if not self.fits(prompts, max_new_tokens):
            raise BackendError(f"these {len(prompts)} prompts do not fit this decoder ({self.n_seq} sequences of "
                               f"{self.capacity} tokens).", backend=self.model_id, fix="open a new decoder.")
        self.prompts = [list(p) for p in prompts]

    # ------------------------------------------------------------ SequenceDecoder
    def start(self) -> np.ndarray:
        # every sequence evaluates at least its last prompt token, for the logits
        limit = [len(p) - 1 for p in self.prompts]
        own = [min(common_prefix([h, p]), cap) for h, p, cap in zip(self._held, self.prompts, limit)]
        shared = min(common_prefix(self.prompts), min(limit))
        if shared > 0 and min(own) < shared:
            # cold: the shared prefix once in sequence 0, copied to the others (a copy between
            # llama.cpp's per-sequence streams copies the whole stream, so it must hold just that)
            self._lib.llama_memory_clear(self._mem, True)
            self._decode([(t, i, 0, False) for i, t in enumerate(self.prompts[0][:shared])])
            for s in range(1, self.n_seq):
                self._lib.llama_memory_seq_cp(self._mem, 0, s, -1, -1)
            own = [shared] * self.n_seq
        entries: list[tuple[int, int, int, bool]] = []
        last: list[int] = []
        for s, p in enumerate(self.prompts):
            self._lib.llama_memory_seq_rm(self._mem, s, own[s], -1)
            entries += [(p[i], i, s, i == len(p) - 1) for i in range(own[s], len(p))]
            last.append(len(entries) - 1)
        self._held = [[] for _ in self.prompts]  # unknown until the evaluation succeeded
        rows = self._decode(entries)
        self._held = [list(p) for p in self.prompts]
        return np.stack([rows[i] for i in last])

    def step(self, tokens: Sequence[int]) -> np.ndarray:
        if len(tokens) != self.n_seq:
            raise BackendError(f"step got {len(tokens)} tokens for {self.n_seq} sequences.", backend=self.model_id,
                               fix="give one token per sequence.")
        entries = [(int(t), len(self._held[s]), s, True) for s, t in enumerate(tokens)]
        held, self._held = self._held, [[] for _ in self._held]  # unknown until the evaluation succeeded
        rows = self._decode(entries)
        self._held = [h + [int(t)] for h, t in zip(held, tokens)]
        return np.stack([rows[s] for s in range(self.n_seq)])

    def is_end(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._llama.detokenize(list(tokens)).decode("utf-8", errors="ignore")


class LlamaScorer(_LlamaContext):
    """The scoring path: the log-probability of each continuation token, one sequence kept between
    calls so that a text sharing a prefix with the previous one re-uses its KV cache (the option
    letters of one question, or the responses of one transcript in order, cost one prompt
    evaluation). Only the rows that predict continuation tokens are computed (no logits for every
    position of the context, unlike llama-cpp-python's `logits_all`). It runs on the generation
    `Llama`'s model, so the weights are loaded once per backend."""

    def __init__(self, llama: Any, *, n_ctx: int, model_id: str = "local") -> None:
        super().__init__(llama, n_seq=1, n_ctx=n_ctx, model_id=model_id)
        self.n_ctx = n_ctx
        self._done: list[int] = []  # tokens whose KV is in the cache, in order

    def token_logprobs(self, tokens: Sequence[int], first: int) -> np.ndarray:
        """log p(tokens[i] | tokens[:i]) for i in first..len(tokens) - 1 (first >= 1)."""
        toks = [int(t) for t in tokens]
        if not 1 <= first < len(toks):
            raise BackendError(f"nothing to score: continuation starts at {first} of {len(toks)} tokens.",
                               backend=self.model_id, fix="give a non-empty prompt and continuation.")
        if len(toks) > self.n_ctx:
            raise BackendError(f"prompt + continuation is {len(toks)} tokens, over n_ctx={self.n_ctx}.",
                               backend=self.model_id, fix="raise backend.n_ctx or shorten the text.")
        # re-use the cached prefix, but evaluate again from the row that predicts the first continuation token
        start = min(common_prefix([self._done, toks]), first - 1)
        self._lib.llama_memory_seq_rm(self._mem, 0, start, -1)
        self._done = self._done[:start]
        entries = [(toks[i], i, 0, i >= first - 1) for i in range(start, len(toks) - 1)]
        try:
            rows = self._decode(entries)
        except BackendError:
            self._lib.llama_memory_seq_rm(self._mem, 0, start, -1)
            raise
        self._done = toks[:-1]
        return np.array([rows[i - start][toks[i + 1]] for i in range(first - 1, len(toks) - 1)], dtype=np.float64)
