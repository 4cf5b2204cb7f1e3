"""client_throughput: personae (Runner + OpenAIBackend + store) vs a plain AsyncOpenAI loop, and a
plain aiohttp loop as the ceiling, against one instant mock OpenAI-compatible server.

Each side sends 20,000 distinct short chat requests at concurrency 64 to the same server
(aiohttp.web in its own process on 127.0.0.1: `_mock_openai.py`, answering at once with the same
bytes), so what is measured is the client: its requests/s and its CPU (`time.process_time()` of
this process; the server's CPU is another process's).

- personae: `Runner.run` with the default `openai` backend (aiohttp client, adaptive concurrency
  on) and concurrency 64, every result committed to a fresh SQLite store (always a cache miss):
  building Request objects, cache keys, the look-up, the HTTP call, the commit;
- SDK: `AsyncOpenAI(max_retries=0).chat.completions.create` under a semaphore of 64;
- aiohttp: one ClientSession (pool of 64), `session.post` + `json.loads` under a semaphore of 64.

Fairness: 10 blocks of 2,000 requests per side, the side order rotated per block, so load from
other processes (a shared 2-core machine) falls on all sides alike; a warm-up of 500 requests
per side first. The ratio is the median over blocks of (personae requests/s / SDK requests/s)
for the same block, adjacent in time; totals are printed too.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ._common import BenchResult, median, say
from ._mock_openai import mock_server

N_REQUESTS = 20_000
BLOCKS = 10
WARMUP = 500
CONCURRENCY = 64
MAX_TOKENS = 16
TARGET = 4.0
MODEL = "bench"
SIDES = ("personae", "sdk", "aiohttp")


def _chat(side: str, i: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": f"You are persona number {i % 50}."},
            {"role": "user", "content": f"Question {i} for the {side} side: what do you do on a rainy day?"}]


async def _measure(base_url: str, tmp: Path, n: int = N_REQUESTS, blocks: int = BLOCKS,
                   warmup: int = WARMUP) -> BenchResult:
    import aiohttp
    import openai

    from personae.backends import create_backend
    from personae.backends.base import Message, Request, Sampling
    from personae.runner import Runner
    from personae.store import Store

    model_id = f"openai/{MODEL}"
    sampling = Sampling(temperature=0.0, max_tokens=MAX_TOKENS)
    backend = create_backend(model_id, {"base_url": base_url})
    store = Store(tmp / "bench.sqlite")
    runner = Runner({model_id: backend}, store, concurrency=CONCURRENCY)
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key="sk-no-key", max_retries=0, timeout=120.0)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY))
    chat_url = f"{base_url}/chat/completions"
    failures = {s: 0 for s in SIDES}

    async def bounded(calls: list[Callable[[], Awaitable[str | None]]], side: str) -> None:
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(call: Callable[[], Awaitable[str | None]]) -> None:
            async with sem:
                if await call() is None:
                    failures[side] += 1

        await asyncio.gather(*(one(c) for c in calls))

    async def sdk_call(chat: list[dict[str, str]]) -> str | None:
        try:
            out = await sdk.chat.completions.create(model=MODEL, messages=chat, max_tokens=MAX_TOKENS,  # type: ignore[arg-type]
                                                    temperature=0.0, top_p=1.0)
        except openai.OpenAIError:
            return None
        return out.choices[0].message.content or ""

    async def aiohttp_call(chat: list[dict[str, str]]) -> str | None:
        body = {"model": MODEL, "messages": chat, "max_tokens": MAX_TOKENS, "temperature": 0.0, "top_p": 1.0}
        try:
            async with session.post(chat_url, json=body) as resp:
                data = json.loads(await resp.read())
        except (aiohttp.ClientError, ValueError):
            return None
        return data["choices"][0]["message"]["content"] if resp.status == 200 else None

    async def side_run(side: str, start: int, count: int) -> None:
        chats = [_chat(side, i) for i in range(start, start + count)]
        if side == "personae":
            reqs = [Request(model=model_id, messages=tuple(Message(**m) for m in c), sampling=sampling)
                    for c in chats]
            results = await runner.run(reqs)
            failures[side] += sum(not r.ok for r in results) + (count - len(results))
        elif side == "sdk":
            await bounded([lambda c=c: sdk_call(c) for c in chats], side)  # type: ignore[misc]
        else:
            await bounded([lambda c=c: aiohttp_call(c) for c in chats], side)  # type: ignore[misc]

    per_block = n // blocks
    secs: dict[str, list[float]] = {s: [] for s in SIDES}
    cpu: dict[str, float] = {s: 0.0 for s in SIDES}
    try:
        for side in SIDES:  # warm-up: connections, imports, the store's first pages
            await side_run(side, 10_000_000, warmup)
        failures.update({s: 0 for s in SIDES})
        for b in range(blocks):
            order = SIDES[b % 3:] + SIDES[:b % 3]
            for side in order:
                t0, c0 = time.perf_counter(), time.process_time()
                await side_run(side, b * per_block, per_block)
                secs[side].append(time.perf_counter() - t0)
                cpu[side] += time.process_time() - c0
            say(f"  block {b + 1}/{blocks}: " + ", ".join(f"{s} {per_block / secs[s][-1]:.0f}/s" for s in order))
        stored = store.count("results")
        concurrency = dict(runner.stats.concurrency)
    finally:
        await backend.aclose()
        await sdk.close()
        await session.close()
        store.close()

    total = per_block * blocks
    rate = {s: total / sum(secs[s]) for s in SIDES}
    ms = {s: 1000 * cpu[s] / total for s in SIDES}
    paired = [p / q for p, q in zip(secs["sdk"], secs["personae"])]
    raw: dict[str, Any] = {
        "requests_per_side": total, "concurrency": CONCURRENCY, "blocks": blocks,
        **{f"{s}_req_per_s": round(rate[s], 1) for s in SIDES},
        **{f"{s}_client_cpu_ms_per_request": round(ms[s], 3) for s in SIDES},
        "total_throughput_ratio_personae_sdk": round(rate["personae"] / rate["sdk"], 3),
        "personae_share_of_aiohttp_ceiling": round(rate["personae"] / rate["aiohttp"], 3),
        "paired_block_ratios": [round(x, 2) for x in paired],
        "personae_results_in_store": stored - warmup,
        "personae_width": concurrency,
        "failures": failures,
    }
    notes = ["same mock server process for all sides; 10 blocks with rotated side order; ratio = median of "
             "paired block ratios (personae/SDK requests/s); client CPU = this process's CPU time"]
    if any(failures.values()):
        notes.append(f"failed requests (counted as done in the throughput): {failures}")
    return BenchResult("client_throughput", median(paired), TARGET, "requests/s personae/openai SDK (median of blocks)",
                       raw, notes)


def run() -> BenchResult:
    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp, mock_server() as url:
        say(f"  mock server up at {url}")
        return asyncio.run(asyncio.wait_for(_measure(url, Path(tmp)), timeout=30 * 60))
