"""The openai backend's HTTP transports: aiohttp (default) and the openai SDK (`client: sdk`).

Both answer `post(path, body)` with the parsed JSON body of a 2xx answer, and raise the same few
exceptions otherwise, which the backend maps to personae's errors:
- `StatusError` for a non-2xx answer (status, the server's message, Retry-After in seconds),
- `BadBody` for a 2xx answer that is not JSON (the start of what came back),
- `Unreachable` when no connection could be made (refused, unknown host),
- `Timeout` for a request that took longer than the backend's `timeout_s`,
- `Disconnected` for a connection lost mid-request (reset, closed, cut body).

Why aiohttp: against an instant server on 127.0.0.1 at concurrency 64 the SDK (httpx underneath)
spends ~2.7 ms of client CPU per request (~350 requests/s on one core), aiohttp ~0.2 ms (see
benchmarks/client_throughput.py). One aiohttp ClientSession per backend and event loop, its pool
limited to the backend's `max_connections`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import time
from typing import Any


class StatusError(Exception):
    def __init__(self, status: int, text: str, retry_after: float | None) -> None:
        super().__init__(f"{status}: {text}")
        self.status, self.text, self.retry_after = status, text, retry_after


class BadBody(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class Unreachable(Exception):
    pass


class Timeout(Exception):
    pass


class Disconnected(Exception):
    pass


def retry_after_s(header: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (RFC 9110 section 10.2.3)."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when is not None else None


def error_text(body: bytes | str, limit: int = 200) -> str:
    """The server's message from an error body: OpenAI's `{"error": {"message": ...}}` (or
    `{"error": "..."}`, `{"message": ...}`, `{"detail": ...}`), else the start of the text."""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    msg: Any = None
    if isinstance(data, dict):
        err = data.get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        msg = msg or data.get("message") or data.get("detail")
    text = str(msg) if msg else raw
    return " ".join(text.split())[:limit]


class AiohttpTransport:
    """POST JSON to an OpenAI-compatible server with aiohttp: one pooled session per event loop."""

    def __init__(self, base_url: str, headers: dict[str, str], *, timeout_s: float, max_connections: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json", **headers}
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._urls: dict[str, Any] = {}

    def _session_for(self, loop: asyncio.AbstractEventLoop) -> Any:
        import aiohttp  # noqa: PLC0415

        if self._session is not None and self._loop is loop and not self._session.closed:
            return self._session
        if self._session is not None:
            _drop(self._session)  # made in another (finished) event loop: it cannot be used here
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections)
        self._session = aiohttp.ClientSession(
            connector=connector, headers=self.headers, trust_env=_proxy_in_env(),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        self._loop = loop
        return self._session

    def _url(self, path: str) -> Any:
        url = self._urls.get(path)
        if url is None:
            import yarl  # noqa: PLC0415 (an aiohttp dependency)

            url = self._urls[path] = yarl.URL(self.base_url + path)
        return url

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        import aiohttp  # noqa: PLC0415

        session = self._session_for(asyncio.get_running_loop())
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        try:
            async with session.post(self._url(path), data=data) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise Timeout() from exc
        except aiohttp.ClientConnectorError as exc:
            raise Unreachable(str(getattr(exc, "os_error", None) or exc)) from exc
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                aiohttp.ClientResponseError, ConnectionError) as exc:
            raise Disconnected(f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= status < 300:
            raise StatusError(status, error_text(raw), retry_after_s(retry_after))
        try:
            return json.loads(raw)
        except ValueError:
            raise BadBody(raw.decode("utf-8", "replace")) from None

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            if self._loop is asyncio.get_running_loop():
                await session.close()
            else:
                _drop(session)


def _proxy_in_env() -> bool:
    """Honour HTTP(S)_PROXY / ALL_PROXY / NO_PROXY (as the SDK's httpx client does) only when one is
    set: aiohttp's trust_env also reads ~/.netrc in a worker thread on every request, which halves
    throughput against a fast server."""
    return any(os.environ.get(v) for v in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                                           "all_proxy"))


def _drop(session: Any) -> None:
    """Release a session whose event loop is gone: its sockets are closed directly (the loop that
    would run the transports' close callbacks has ended), and the session is marked closed."""
    try:
        connector = session.connector
        for conns in list(getattr(connector, "_conns", {}).values()):  # noqa: SLF001
            for proto, *_ in conns:
                transport = getattr(proto, "transport", None)
                if getattr(transport, "_sock", None) is not None:
                    transport._sock.close()  # noqa: SLF001
                    transport._sock = None  # noqa: SLF001
        connector._conns.clear()  # noqa: SLF001
        connector._closed = True  # noqa: SLF001
        session._connector = None  # noqa: SLF001 (no 'unclosed session' warning for a dead loop's session)
    except Exception:  # noqa: BLE001 (best effort on a dead loop's objects)
        pass


class SdkTransport:
    """The same calls through the openai SDK (`client: sdk`): slower, kept for servers or proxies
    that only the SDK's client handles."""

    def __init__(self, base_url: str, api_key: str, headers: dict[str, str], *, timeout_s: float,
                 max_connections: int, http_client: Any = None) -> None:
        import openai  # noqa: PLC0415

        http = http_client or _sdk_http_client(max_connections, timeout_s)
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout_s,
                                          http_client=http, default_headers=headers or None)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        import openai  # noqa: PLC0415

        try:
            out = await self._client.post(path, cast_to=object, body=body)
        except openai.APITimeoutError as exc:
            raise Timeout() from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            if cause is not None and "connect" in type(cause).__name__.lower():
                raise Unreachable(str(cause)) from exc
            raise Disconnected(str(cause or exc)) from exc
        except openai.APIStatusError as exc:
            raise StatusError(exc.status_code, error_text(exc.response.text if exc.response is not None else
                                                          str(exc.message)),
                              retry_after_s(exc.response.headers.get("retry-after") if exc.response is not None
                                            else None)) from exc
        except ValueError as exc:  # a 2xx body that is not JSON (json.JSONDecodeError is a ValueError)
            raise BadBody(getattr(exc, "doc", None) or str(exc)) from exc
        if isinstance(out, (str, bytes)):
            raise BadBody(out.decode("utf-8", "replace") if isinstance(out, bytes) else out)
        return out

    async def aclose(self) -> None:
        await self._client.close()


def _sdk_http_client(max_connections: int, timeout: float) -> Any:
    """The openai package's own async HTTP client (httpx or httpx2, whichever it uses), with limits."""
    import importlib  # noqa: PLC0415

    import openai  # noqa: PLC0415

    # DefaultAsyncHttpxClient is a subclass defined in `openai` itself: the HTTP package is the
    # module of the first base class that does not live in openai.
    base = next(c for c in openai.DefaultAsyncHttpxClient.__mro__
                if c.__module__.split(".")[0] not in ("openai", "builtins"))
    http_mod = importlib.import_module(base.__module__.split(".")[0])
    limits = http_mod.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return openai.DefaultAsyncHttpxClient(limits=limits, timeout=timeout)
