"""Any OpenAI-compatible server: vLLM, llama.cpp server, Ollama, hosted APIs.

`openai/MODEL` with `base_url` and the key from options or the environment
(`PERSONAE_OPENAI_BASE_URL` / `OPENAI_BASE_URL`, and the variable named by `api_key_env`).
Retries are the runner's job: every failure is mapped to a transient or permanent BackendError
(429/408/5xx and lost connections transient, with Retry-After; 401/403 a key error; other 4xx a
request error; a server that cannot be reached ServerUnreachableError: unavailable, retried, and a
run whose first requests all meet it stops with the fix).
The HTTP client is aiohttp (`client: aiohttp`, default) or the openai SDK (`client: sdk`); see
`_http.py` for why. With `adaptive: true` (default) the executor adapts the requests in flight to
the server (AIMD, `personae.executors.adaptive`).

Scoring (log-probability of a continuation) needs server support:
- `scoring: prompt_logprobs` (vLLM): a completions call with `prompt_logprobs` and max_tokens 1;
- `scoring: echo` (servers that return correct echoed prompt log-probs);
- `scoring: none` (default). llama.cpp's server echoes misaligned prompt log-probs: do not
  enable `echo` for it.
Chat messages are rendered with ChatML for scoring; set `prompt` for other formats.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ..errors import (BackendError, BackendUnavailableError, ConfigError, ServerUnreachableError, TransientBackendError,
                      mask_secrets)
from ._http import AiohttpTransport, BadBody, Disconnected, SdkTransport, StatusError, Timeout, Unreachable
from .base import Backend, Generation, Request, Score


def _env_base_url() -> str | None:
    return os.environ.get("PERSONAE_OPENAI_BASE_URL") or os.environ.get("OPENAI_BASE_URL")


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str | None = Field(default_factory=_env_base_url)
    """Server URL ending in /v1; default from PERSONAE_OPENAI_BASE_URL or OPENAI_BASE_URL."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the key (the key itself never enters a spec)."""
    api_key: SecretStr | None = Field(default=None, exclude=True)
    """The key, for Python callers; never written to the store, logs or reports."""
    mode: Literal["chat", "completions"] = "chat"
    """Use /chat/completions (messages) or /completions (raw prompt)."""
    scoring: Literal["none", "prompt_logprobs", "echo"] = "none"
    """How the server returns prompt log-probabilities (see module docs)."""
    json_format: Literal["json_schema", "json_object"] = "json_schema"
    """How `json_schema` requests are sent: OpenAI's `{type: json_schema, json_schema: {...}}`, or
    `{type: json_object, schema: {...}}` for llama.cpp's Python server (llama-cpp-python), which
    rejects the former."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Client-side timeout per HTTP request."""
    max_connections: int = Field(default=64, ge=1)
    """Connections per backend (its HTTP pool's size); requests beyond it wait for a free one."""
    client: Literal["aiohttp", "sdk"] = "aiohttp"
    """The HTTP client: aiohttp (fast: ~0.2 ms of client CPU per request), or the openai SDK
    (~2.7 ms per request; for a server or proxy only the SDK's client handles)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra HTTP headers sent with every request (e.g. an organisation or a gateway's header);
    their values are masked in errors and run.json like the key."""
    adaptive: bool = True
    """Adapt the requests in flight to the server (AIMD): halve on 429/503, grow by one per window
    of answers while latency holds, never above the spec's `concurrency.requests`."""


def without_credentials(url: str | None) -> str | None:
    """A URL with any user:password part replaced, for run.json and reports."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_base_url(url: str | None, *, from_env: bool = False, api_key_env: str = "OPENAI_API_KEY") -> None:
    """Refuse a base_url that is not an http(s) URL with a host, or that holds a user name or password
    (the HTTP client would send them as Basic auth instead of the API key, and they would be written
    wherever the URL is). Raises ConfigError on field 'backend.base_url'."""
    if url is None:
        return
    where = "PERSONAE_OPENAI_BASE_URL / OPENAI_BASE_URL" if from_env else "base_url"
    example = "e.g. http://127.0.0.1:8000/v1"
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError as exc:
        raise ConfigError(f"{_shown_url(url)} is not a URL ({exc}).", field="backend.base_url",
                          fix=f"write the server's address in {where}, {example}.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{_shown_url(url)} is not an http:// or https:// URL with a host.", field="backend.base_url",
                          fix=f"write the server's address in {where}, {example}.")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"the URL {without_credentials(url)!r} holds a user name or password: personae would send "
                          "them as Basic auth instead of the API key, and write them wherever the URL goes.",
                          field="backend.base_url",
                          fix=f"remove 'user:password@' from the URL{' in ' + where if from_env else ''} and put the "
                          f"key in the environment variable named by api_key_env (now {api_key_env}).")


def _shown_url(url: str) -> str:
    text = repr(mask_secrets(url))
    return text if len(text) <= 80 else text[:77] + "..."


def check_options(options: OpenAIOptions) -> None:
    """The spec-time check (personae validate): a usable, credential-free base_url."""
    check_base_url(options.base_url, from_env="base_url" not in options.model_fields_set,
                   api_key_env=options.api_key_env)


def chatml(messages: list[dict[str, str]]) -> str:
    body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return body + "<|im_start|>assistant\n"


class OpenAIBackend(Backend):
    """An OpenAI-compatible HTTP server."""

    provider: ClassVar[str] = "openai"
    supports_json = True
    supports_seed = True

    def __init__(self, model_id: str, options: OpenAIOptions | None = None, *, http_client: Any = None) -> None:
        """`http_client`: an httpx client for the SDK transport (tests give a mock one); giving one
        selects `client: sdk`."""
        super().__init__(model_id)
        self.options = options or OpenAIOptions()
        self.model_name = model_id.split("/", 1)[1]
        self.supports_scoring = self.options.scoring != "none"
        self.adaptive_concurrency = self.options.adaptive
        check_options(self.options)
        if not self.options.base_url:
            raise BackendUnavailableError(
                f"no server URL for '{model_id}'.", backend=model_id,
                fix="set backend.base_url in the spec or PERSONAE_OPENAI_BASE_URL, e.g. http://127.0.0.1:8000/v1.")
        self._http_client = http_client
        self._client: Any = None

    def _api_key(self) -> str:
        return (self.options.api_key.get_secret_value() if self.options.api_key
                else os.environ.get(self.options.api_key_env) or "sk-no-key")

    def _secrets(self) -> list[str]:
        """The values masked in every error text: the key and the extra headers' values."""
        return [v for v in (self._api_key(), *self.options.headers.values()) if len(v) >= 8]

    @property
    def client(self) -> AiohttpTransport | SdkTransport:
        """The transport (created on first use; a key that cannot go in a header is refused here)."""
        if self._client is None:
            key = self._api_key()
            for name, value in [("key", key), *self.options.headers.items()]:
                # printable ASCII only (a key has no space at all): the HTTP library would refuse the
                # header with an error that quotes it
                low = "!" if name == "key" else " "
                if value != value.strip() or not all(low <= c <= "~" for c in value):
                    what, where = (("API key", "backend.api_key" if self.options.api_key else
                                    f"${self.options.api_key_env}") if name == "key"
                                   else ("header value", f"backend.headers.{name}"))
                    raise BackendUnavailableError(
                        f"the {what} in {where} contains spaces, a newline or other characters that cannot go "
                        "in an HTTP header.", backend=self.model_id,
                        fix="remove the surrounding whitespace (e.g. a trailing newline from the file it was read "
                        "from).")
            url = self.options.base_url or ""
            if self.options.client == "sdk" or self._http_client is not None:
                self._client = SdkTransport(url, key, dict(self.options.headers), timeout_s=self.options.timeout_s,
                                            max_connections=self.options.max_connections,
                                            http_client=self._http_client)
            else:
                self._client = AiohttpTransport(url, {"Authorization": f"Bearer {key}", **self.options.headers},
                                                timeout_s=self.options.timeout_s,
                                                max_connections=self.options.max_connections)
        return self._client

    def _not_openai(self, body: Any) -> TransientBackendError:
        """A 200 answer that is not an OpenAI response (HTML from a proxy, a truncated body, `{}`, no
        choices): transient (retried), with the start of what came back."""
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (
            body if isinstance(body, str) else json.dumps(body, default=str))
        snippet = " ".join(text.split())[:80]
        return TransientBackendError(
            f"the server at {without_credentials(self.options.base_url)} answered 200 with a body that is not an "
            f"OpenAI response: {snippet!r}", backend=self.model_id, status=200,
            fix="check that backend.base_url points at an OpenAI-compatible API (ending in /v1), not a proxy page.")

    def _first_choice(self, out: Any, field: str) -> dict[str, Any]:
        """The first choice of a response, which must hold `field` ('message', 'text', 'logprobs')."""
        choices = out.get("choices") if isinstance(out, dict) else None
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict) or field not in choice:
            raise self._not_openai(out)
        return choice

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.client.post(path, body)
        except BackendError:
            raise
        except Exception as exc:
            raise self._map_error(exc) from None

    def _map_error(self, exc: Exception) -> BackendError:
        """The BackendError for a transport exception, with the API key (and header values) masked."""
        mapped = self._classify(exc)
        hidden = [s for s in self._secrets() if s in mapped.message or (mapped.fix and s in mapped.fix)]
        if hidden:
            for secret in hidden:
                mapped.message = mapped.message.replace(secret, "***")
                mapped.fix = mapped.fix.replace(secret, "***") if mapped.fix else mapped.fix
            mapped.args = (mapped.one_line(),)
        return mapped

    def _classify(self, exc: Exception) -> BackendError:
        url = without_credentials(self.options.base_url)
        if isinstance(exc, Timeout):
            return TransientBackendError(f"request to {url} timed out after {self.options.timeout_s:g} s.",
                                         backend=self.model_id, fix="raise backend.timeout_s if the server is slow.")
        if isinstance(exc, Unreachable):
            return ServerUnreachableError(
                f"cannot reach the server at {url} ({exc}).", backend=self.model_id,
                fix=f"start the server or correct backend.base_url (now {url}).")
        if isinstance(exc, Disconnected):
            return TransientBackendError(f"the connection to {url} was lost ({exc}).", backend=self.model_id)
        if isinstance(exc, StatusError):
            status, text = exc.status, exc.text
            if status == 429 or status >= 500 or status == 408:
                return TransientBackendError(f"{url} answered {status}: {text}", backend=self.model_id,
                                             status=status, retry_after=exc.retry_after)
            key_at = "backend.api_key" if self.options.api_key else f"the variable {self.options.api_key_env}"
            fix = f"check the API key (in {key_at})." if status in (401, 403) else (
                "check the model name: the server does not know it." if status == 404 else
                "check the request options (model, sampling, json_format) against what the server accepts.")
            return BackendError(f"{url} answered {status}: {text}", backend=self.model_id, status=status, fix=fix)
        if isinstance(exc, BadBody):
            return self._not_openai(exc.text)
        return BackendError(f"unexpected error from {url}: {type(exc).__name__}: {exc}", backend=self.model_id)

    async def generate(self, request: Request) -> Generation:
        s = request.sampling
        body: dict[str, Any] = dict(model=self.model_name, max_tokens=s.max_tokens, temperature=s.temperature,
                                    top_p=s.top_p)
        if s.seed is not None:
            body["seed"] = s.seed
        if s.stop:
            body["stop"] = list(s.stop)
        if request.grammar is not None:  # llama.cpp's server reads 'grammar'; others may refuse it
            body["grammar"] = request.grammar
        start = time.perf_counter()
        if self.options.mode == "completions" or (request.prompt is not None and not request.messages):
            body["prompt"] = request.prompt if request.prompt is not None else chatml(
                [m.model_dump() for m in request.messages])
            out = await self._post("/completions", body)
            choice = self._first_choice(out, "text")
            text = choice["text"]
        else:
            if request.json_schema is not None and self.options.json_format == "json_object":
                body["response_format"] = {"type": "json_object", "schema": request.json_schema}
            elif request.json_schema is not None:
                body["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": "answer", "schema": request.json_schema, "strict": True}}
            body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
            out = await self._post("/chat/completions", body)
            message = self._first_choice(out, "message")["message"]
            if not isinstance(message, dict):
                raise self._not_openai(out)
            text = message.get("content")
            choice = out["choices"][0]
        if text is not None and not isinstance(text, str):
            raise self._not_openai(out)
        usage = out.get("usage") if isinstance(out.get("usage"), dict) else {}
        return Generation(text=text or "", finish_reason=choice.get("finish_reason"),
                          prompt_tokens=usage.get("prompt_tokens") or 0,
                          completion_tokens=usage.get("completion_tokens") or 0,
                          latency_s=time.perf_counter() - start)

    async def score(self, request: Request) -> Score:
        if not self.supports_scoring:
            return await super().score(request)
        prompt = request.prompt if request.prompt is not None else chatml([m.model_dump() for m in request.messages])
        cont = request.continuation or ""
        full = prompt + cont
        start = time.perf_counter()
        try:
            if self.options.scoring == "prompt_logprobs":
                out = await self._post("/completions", {"model": self.model_name, "prompt": full, "max_tokens": 1,
                                                        "temperature": 0.0, "prompt_logprobs": 0})
                raw = out.get("prompt_logprobs") if isinstance(out, dict) else None
                if raw is None and isinstance(out, dict) and out.get("choices"):
                    raw = out["choices"][0].get("prompt_logprobs")
                pairs = _pairs_from_prompt_logprobs(raw)
                # vLLM gives no entry text for the first prompt token: count offsets back from the end
                offsets = None
                text_chars: int | None = len(full)
            else:
                out = await self._post("/completions", {"model": self.model_name, "prompt": full, "max_tokens": 0,
                                                        "echo": True, "logprobs": 0, "temperature": 0.0})
                lp = self._first_choice(out, "logprobs")["logprobs"]
                pairs = list(zip(lp["tokens"], lp["token_logprobs"]))
                offsets = list(lp["text_offset"]) if lp.get("text_offset") else list(
                    itertools.accumulate((len(t) for t in lp["tokens"][:-1]), initial=0))[: len(lp["tokens"])]
                text_chars = len(full)  # tokens past the text were generated: not part of the score
        except BackendError:
            raise
        except (KeyError, TypeError, AttributeError, IndexError, ValueError):
            raise self._not_openai(out) from None
        return score_from_token_pairs(pairs, len(prompt), request.per_token, time.perf_counter() - start,
                                      backend=self.model_id, offsets=offsets, text_chars=text_chars)

    def fingerprint(self) -> str:
        """The server (URL without credentials or a trailing slash) and how it scores."""
        url = (without_credentials(self.options.base_url) or "").rstrip("/")
        return f"openai:{url}:scoring={self.options.scoring}"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_url": without_credentials(self.options.base_url),
                "scoring": self.options.scoring, "client": "sdk" if self._http_client is not None
                else self.options.client}

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def _pairs_from_prompt_logprobs(raw: Any) -> list[tuple[str, float | None]]:
    """vLLM's prompt_logprobs: a list (None for the first token) of {token_id: {logprob, rank, decoded_token}}.

    The prompt token itself comes first in each mapping (any top-k alternatives follow it).
    """
    if not isinstance(raw, list):
        raise BackendError("the server returned no prompt_logprobs.",
                           fix="use a server that supports prompt_logprobs (vLLM) or set scoring: none.")
    pairs: list[tuple[str, float | None]] = []
    for entry in raw:
        if not entry:
            pairs.append(("", None))
            continue
        first = next(iter(entry.values()))
        pairs.append((first.get("decoded_token") or "", float(first["logprob"])))
    return pairs


def score_from_token_pairs(pairs: list[tuple[str, float | None]], prompt_chars: int, per_token: bool,
                           latency: float, backend: str | None = None, *, offsets: list[int] | None = None,
                           text_chars: int | None = None) -> Score:
    """Sum the log-probs of the continuation's tokens: those starting at or after `prompt_chars`.

    A token's start is `offsets[i]` when the server gives it (echo's `text_offset`); otherwise the
    lengths of the decoded tokens are added up: from the start of the text, or, when `text_chars`
    (the length of prompt + continuation) is given, backwards from its end (vLLM's first prompt
    token has no entry, so counting from the start would be off by its length). Tokens starting at
    or after `text_chars` were generated, not scored, and are ignored. A token that straddles the
    prompt/continuation boundary is an error, never silently dropped.
    """
    if offsets is not None:
        if len(offsets) != len(pairs):
            raise BackendError(f"the server returned {len(offsets)} text offsets for {len(pairs)} tokens.",
                               backend=backend)
        starts = [int(o) for o in offsets]
    elif text_chars is not None:
        pos = text_chars - sum(len(tok) for tok, _ in pairs)
        if pos < 0:
            raise BackendError("the server's decoded tokens are longer than the text that was sent.",
                               backend=backend, fix="use a server whose decoded tokens reproduce the text.")
        starts = []
        for tok, _ in pairs:
            starts.append(pos)
            pos += len(tok)
    else:
        starts, pos = [], 0
        for tok, _ in pairs:
            starts.append(pos)
            pos += len(tok)
    end = text_chars if text_chars is not None else float("inf")
    chosen: list[tuple[str, float]] = []
    for (tok, lp), at in zip(pairs, starts):
        if at < prompt_chars < at + len(tok):
            raise BackendError("a server token spans the end of the prompt and the start of the continuation.",
                               backend=backend,
                               fix="start the continuation at a token boundary, e.g. with a leading space.")
        if prompt_chars <= at < end:
            if lp is None:
                raise BackendError("the server returned no log-probability for a continuation token.", backend=backend)
            chosen.append((tok, float(lp)))
    if not chosen:
        raise BackendError("could not locate the continuation in the server's tokens.", backend=backend,
                           fix="the server's tokenizer merges the prompt and continuation; add a leading space.")
    return Score(logprob=sum(lp for _, lp in chosen), n_tokens=len(chosen),
                 token_logprobs=tuple(lp for _, lp in chosen) if per_token else None,
                 tokens=tuple(t for t, _ in chosen) if per_token else None, latency_s=latency)
