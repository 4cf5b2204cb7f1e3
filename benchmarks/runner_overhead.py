"""runner_overhead: personae's Runner + OpenAIBackend vs a plain AsyncOpenAI loop, same server.

Both sides send the same 300 distinct short chats (20 personas x 15 questions, max_tokens 8,
temperature 0) at concurrency 4 to one `python -m llama_cpp.server` on 127.0.0.1.

Fairness:
- the same prompts in the same (persona-major) order for both sides, against the same server,
  so llama.cpp's prefix reuse (it keeps the previous request's tokens) is the same for both;
  the server has no response cache (`--cache` is off), so repeating a prompt saves nothing
  except that prefix;
- the 300 are split into 30 blocks of 10 and the order alternates per block (plain first, then
  personae first, ...), so drift (thermal, background load) falls on both sides equally;
- a warm-up of 8 other prompts through each side first (connections, model pages, imports);
- personae's side is timed end to end: building Request objects, cache look-up in a fresh
  temporary store (always a miss), the HTTP call, and committing each result to SQLite.

The ratio is the median over the 30 blocks of (plain seconds / personae seconds) for the two
runs of the same block, which are adjacent in time: on a shared 2-core machine, other
processes' load comes in bursts longer than a block and swamps a ratio of totals. The ratio of
total throughputs and the client process's CPU seconds per side are printed too; the CPU
seconds show the overhead directly (the server runs in its own process).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from ._common import BenchResult, chat_prompts, llama_server, median, say

N_REQUESTS = 300
CONCURRENCY = 4
BLOCK = 10
MAX_TOKENS = 8
TARGET = 0.95
ALIAS = "smollm2"
WARMUP = [[{"role": "system", "content": f"You are helper number {i}."},
           {"role": "user", "content": "Say hello."}] for i in range(8)]


async def _measure(base_url: str, tmp: Path) -> BenchResult:
    import openai

    from personae.backends import create_backend
    from personae.backends.base import Message, Request, Sampling, Tags
    from personae.runner import Runner
    from personae.store import Store

    model_id = f"openai/{ALIAS}"
    sampling = Sampling(temperature=0.0, max_tokens=MAX_TOKENS)
    backend = create_backend(model_id, {"base_url": base_url})
    plain_errors: list[str] = []
    plain = openai.AsyncOpenAI(base_url=base_url, api_key="sk-no-key", max_retries=0, timeout=120.0)

    def to_requests(chats: list[list[dict[str, str]]], start: int) -> list[Request]:
        return [Request(model=model_id, messages=tuple(Message(**m) for m in chat), sampling=sampling,
                        tags=Tags(item=f"r{start + i}")) for i, chat in enumerate(chats)]

    async def plain_run(chats: list[list[dict[str, str]]]) -> list[str | None]:
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(chat: list[dict[str, str]]) -> str | None:
            async with sem:
                try:
                    out = await plain.chat.completions.create(model=ALIAS, messages=chat, max_tokens=MAX_TOKENS,
                                                              temperature=0.0, top_p=1.0)
                except openai.OpenAIError as exc:
                    plain_errors.append(f"{type(exc).__name__}: {exc}"[:160])
                    return None
                return out.choices[0].message.content or ""

        return await asyncio.gather(*(one(c) for c in chats))

    async def personae_run(runner: Runner, chats: list[list[dict[str, str]]], start: int) -> list[str | None]:
        results = await runner.run(to_requests(chats, start))
        return [r.text if r.ok else None for r in results]

    stores: list[Store] = []
    try:
        # warm-up: other prompts, both sides, not timed
        stores.append(Store(tmp / "warmup.sqlite"))
        warm_runner = Runner({model_id: backend}, stores[-1], concurrency=CONCURRENCY)
        await plain_run(WARMUP)
        await personae_run(warm_runner, WARMUP, 0)

        stores.append(Store(tmp / "bench.sqlite"))
        runner = Runner({model_id: backend}, stores[-1], concurrency=CONCURRENCY)
        chats = chat_prompts(N_REQUESTS)
        times: dict[str, list[float]] = {"plain": [], "personae": []}
        cpu = {"plain": 0.0, "personae": 0.0}
        texts: dict[str, list[str | None]] = {"plain": [], "personae": []}
        for b, start in enumerate(range(0, N_REQUESTS, BLOCK)):
            block = chats[start : start + BLOCK]
            order = ("plain", "personae") if b % 2 == 0 else ("personae", "plain")
            for side in order:
                t0, c0 = time.perf_counter(), time.process_time()
                out = await (plain_run(block) if side == "plain" else personae_run(runner, block, start))
                times[side].append(time.perf_counter() - t0)
                cpu[side] += time.process_time() - c0
                texts[side].extend(out)
            say(f"  block {b + 1}/{N_REQUESTS // BLOCK}: " + ", ".join(
                f"{s} {times[s][-1]:.2f} s" for s in order))
    finally:
        await backend.aclose()
        await plain.close()
        for st in stores:
            st.close()

    t_plain, t_pers = sum(times["plain"]), sum(times["personae"])
    err_plain = sum(t is None for t in texts["plain"])
    err_pers = sum(t is None for t in texts["personae"])
    same = sum(a == b and a is not None for a, b in zip(texts["plain"], texts["personae"]))
    paired = [a / b for a, b in zip(times["plain"], times["personae"])]
    ratio = median(paired)
    raw = {
        "requests_per_side": N_REQUESTS, "concurrency": CONCURRENCY, "max_tokens": MAX_TOKENS,
        "plain_seconds": round(t_plain, 2), "personae_seconds": round(t_pers, 2),
        "plain_req_per_s": round(N_REQUESTS / t_plain, 3), "personae_req_per_s": round(N_REQUESTS / t_pers, 3),
        "total_throughput_ratio": round(t_plain / t_pers, 3),
        "paired_block_ratios": [round(x, 3) for x in paired],
        "client_cpu_ms_per_request_plain": round(1000 * cpu["plain"] / N_REQUESTS, 2),
        "client_cpu_ms_per_request_personae": round(1000 * cpu["personae"] / N_REQUESTS, 2),
        "plain_block_seconds": [round(x, 2) for x in times["plain"]],
        "personae_block_seconds": [round(x, 2) for x in times["personae"]],
        "plain_errors": err_plain, "personae_errors": err_pers,
        "plain_error_messages": sorted(set(plain_errors)),
        "personae_retries": runner.stats.retries,
        "personae_error_messages": runner.stats.error_messages,
        "personae_backend_calls": runner.stats.backend_calls, "personae_cache_hits": runner.stats.cache_hits,
        "identical_replies": f"{same}/{N_REQUESTS}",
    }
    notes = ["same 300 prompts, same order, same server; 30 blocks of 10 with alternating side order; "
             "warm-up of 8 other prompts per side; ratio = median of paired block ratios"]
    if err_plain or err_pers or runner.stats.retries:
        notes.append(f"errors: plain {err_plain}, personae {err_pers}, personae retries {runner.stats.retries} "
                     "(the plain loop does not retry; throughput counts failed requests as done)")
    return BenchResult("runner_overhead", ratio, TARGET, "throughput personae/plain (median of blocks)", raw, notes)


def run() -> BenchResult:
    from personae.backends.local import smollm2_path

    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp, llama_server(smollm2_path(), alias=ALIAS) as url:
        say(f"  server up at {url}")
        return asyncio.run(asyncio.wait_for(_measure(url, Path(tmp)), timeout=20 * 60))
