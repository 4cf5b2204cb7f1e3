"""The openai backend on both of its HTTP clients against one handler.

`backend_with(handler, options, client)` gives an OpenAIBackend whose server is `handler`, an
httpx2-style function (httpx2.Request -> httpx2.Response):
- client "sdk": the SDK with an httpx2 MockTransport (no socket);
- client "aiohttp": a real aiohttp server on 127.0.0.1 (a free port, in a thread with its own
  event loop) that turns each request into an httpx2.Request and the handler's answer back.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx2

from personae.backends.openai import OpenAIBackend, OpenAIOptions

Handler = Callable[[httpx2.Request], httpx2.Response]
CLIENTS = ("aiohttp", "sdk")


class ThreadServer:
    """An aiohttp.web app on 127.0.0.1 in a daemon thread; `url` is its /v1 base URL."""

    def __init__(self, handle: Callable[[Any], Any]) -> None:
        from aiohttp import web

        self._web = web
        self._handle = handle
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._runner: Any = None
        self.port = 0

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = self._web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = self._web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = self._web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def httpx_adapter(handler: Handler) -> Callable[[Any], Any]:
    """An aiohttp.web handler that answers with what the httpx2-style `handler` returns."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        req = httpx2.Request(request.method, str(request.url), headers=dict(request.headers), content=body)
        resp = handler(req)
        headers = {k: v for k, v in resp.headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
        return web.Response(status=resp.status_code, body=resp.content, headers=headers)

    return handle


@contextlib.contextmanager
def backend_with(handler: Handler, options: dict[str, Any], client: str,
                 model: str = "openai/m") -> Iterator[OpenAIBackend]:
    """An OpenAIBackend on `client` whose server is `handler` (base_url is filled in)."""
    if client == "sdk":
        opts = OpenAIOptions.model_validate({"base_url": "http://127.0.0.1:9/v1", **options, "client": "sdk"})
        yield OpenAIBackend(model, opts, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
        return
    with ThreadServer(httpx_adapter(handler)) as server:
        yield OpenAIBackend(model, OpenAIOptions.model_validate({**options, "base_url": server.url,
                                                                 "client": "aiohttp"}))
