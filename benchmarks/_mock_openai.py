"""An instant OpenAI-compatible server for client benchmarks: aiohttp.web in its own process.

    python -m benchmarks._mock_openai PORT

Answers POST /v1/chat/completions and /v1/completions at once with a fixed short reply (the same
bytes for every request), GET /v1/models for readiness. Running in another process keeps its CPU
off the client's clock (`time.process_time()` of the benchmark counts the client alone).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

from ._common import HOST, free_port, stop_process_group

CHAT = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Arr, a fine day for sailing."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 24, "completion_tokens": 8, "total_tokens": 32}}).encode()
COMPLETION = json.dumps({
    "id": "cmpl-bench", "object": "text_completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "text": " a fine day.", "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 24, "completion_tokens": 4, "total_tokens": 28}}).encode()
MODELS = json.dumps({"object": "list", "data": [{"id": "bench", "object": "model"}]}).encode()


def serve(port: int) -> None:
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=CHAT, content_type="application/json")

    async def completion(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=COMPLETION, content_type="application/json")

    async def models(request: web.Request) -> web.Response:
        return web.Response(body=MODELS, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completion)
    app.router.add_get("/v1/models", models)
    web.run_app(app, host=HOST, port=port, access_log=None, print=None, backlog=1024)


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def mock_server(start_timeout_s: float = 30.0) -> Iterator[str]:
    """Start the instant server on a free 127.0.0.1 port; yield its /v1 URL; always stop it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks._mock_openai", str(port)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base_url = f"http://{HOST}:{port}/v1"
    try:
        deadline = time.monotonic() + start_timeout_s
        while not _ready(base_url):
            if proc.poll() is not None:
                raise RuntimeError(f"the mock server exited with {proc.returncode}: "
                                   f"{(proc.stderr.read() if proc.stderr else b'').decode()[-1000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the mock server did not answer within {start_timeout_s:g} s")
            time.sleep(0.05)
        yield base_url
    finally:
        stop_process_group(proc, timeout_s=10)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
