"""ray_scaling: the Ray executor with 2 workers vs 1, each worker's backend 4 requests in flight.

Each worker stands for one GPU server: the fake backend with 50 ms latency per call and the
runner's concurrency 4 per backend, so one worker answers at most 80 requests/s and two at most
160. Both sides run on one local Ray cluster started here on 127.0.0.1 (2 CPUs, 128 MB object
store), through the same Runner (cache look-up in a fresh store, commit of every result).

Fairness:
- 400 distinct chats per side (20 personas x 15 questions, replicates to make up the rest), each
  side its own store, so every request is a miss and is sent;
- the workers of both sides are started before any timing (actor start-up is not measured);
- 4 blocks of 100 requests per side, the side order alternating per block, so drift and other
  processes' load fall on both sides alike;
- the ratio is the median over the blocks of (1-worker seconds / 2-worker seconds) of the two
  adjacent runs of a block; the ratio of totals is printed too.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from ._common import BenchResult, chat_prompts, median, say

N_BLOCKS = 4
BLOCK = 100
LATENCY_S = 0.05
IN_FLIGHT = 4
TARGET = 1.6
MODEL = "fake/gpu-server"


def _requests(block: int, side: str) -> list:
    from personae.backends.base import Message, Request, Sampling, Tags

    chats = chat_prompts(300)
    out = []
    for i in range(BLOCK):
        n = block * BLOCK + i
        chat = chats[n % len(chats)]
        out.append(Request(model=MODEL, messages=tuple(Message(**m) for m in chat), replicate=n // len(chats),
                           sampling=Sampling(temperature=0.7, max_tokens=16, seed=n), tags=Tags(item=f"{side}{n}")))
    return out


async def _block(runner, requests) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    t0, c0 = time.perf_counter(), time.process_time()
    results = await runner.run(requests)
    return time.perf_counter() - t0, time.process_time() - c0, sum(not r.ok for r in results)


def run() -> BenchResult:
    import ray

    from personae.backends.pool import BackendPool
    from personae.executors.ray import LOCAL_OBJECT_STORE_BYTES, RayExecutor
    from personae.runner import Runner
    from personae.store import Store

    src = str(Path(__file__).resolve().parents[1] / "src")
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
             _node_ip_address="127.0.0.1", log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": src}})
    sides = {"1 worker": 1, "2 workers": 2}
    executors: dict[str, RayExecutor] = {}
    stores: list[Store] = []
    times: dict[str, list[float]] = {s: [] for s in sides}
    cpu = dict.fromkeys(sides, 0.0)
    errors = dict.fromkeys(sides, 0)
    try:
        with tempfile.TemporaryDirectory(prefix="personae-bench-ray-") as tmp:
            runners = {}
            for side, n in sides.items():
                t0 = time.perf_counter()
                ex = executors[side] = RayExecutor(workers=n, concurrency=IN_FLIGHT, worker_cpus=0.5).start()
                say(f"  {side}: started in {time.perf_counter() - t0:.1f} s (pids {ex.worker_pids()})")
                stores.append(Store(Path(tmp) / f"{n}.sqlite"))
                # backends by model id + options, as a spec gives them: each worker builds its own
                pool = BackendPool(options_for=lambda model: {"delay_s": LATENCY_S})
                runners[side] = runner = Runner(pool, stores[-1], concurrency=IN_FLIGHT, executor=ex)
                ex.bind(runner)
                asyncio.run(runner.run(_requests(99, f"warm{n}-")[:8]))  # backends built in each worker
            for b in range(N_BLOCKS):
                order = list(sides) if b % 2 == 0 else list(reversed(sides))
                for side in order:
                    secs, cpu_s, errs = asyncio.run(_block(runners[side], _requests(b, side)))
                    times[side].append(secs)
                    cpu[side] += cpu_s
                    errors[side] += errs
                say(f"  block {b + 1}/{N_BLOCKS}: " + ", ".join(f"{s} {times[s][-1]:.2f} s" for s in order))
            reruns = {s: executors[s].rerun_jobs for s in sides}
    finally:
        for ex in executors.values():
            ex.close()
        for st in stores:
            st.close()
        ray.shutdown()
    one, two = sum(times["1 worker"]), sum(times["2 workers"])
    paired = [a / b for a, b in zip(times["1 worker"], times["2 workers"])]
    n_side = N_BLOCKS * BLOCK
    raw = {
        "requests_per_side": n_side, "latency_s": LATENCY_S, "in_flight_per_worker": IN_FLIGHT,
        "one_worker_seconds": round(one, 2), "two_workers_seconds": round(two, 2),
        "one_worker_req_per_s": round(n_side / one, 1), "two_workers_req_per_s": round(n_side / two, 1),
        "ideal_req_per_s_one_two": f"{IN_FLIGHT / LATENCY_S:g} / {2 * IN_FLIGHT / LATENCY_S:g}",
        "total_time_ratio": round(one / two, 3), "paired_block_ratios": [round(x, 3) for x in paired],
        "driver_cpu_ms_per_request_one": round(1000 * cpu["1 worker"] / n_side, 2),
        "driver_cpu_ms_per_request_two": round(1000 * cpu["2 workers"] / n_side, 2),
        "errors": errors, "rerun_jobs": reruns,
    }
    notes = ["one local Ray cluster (2 CPUs) on a shared 2-core machine: driver, raylet and workers share it; "
             "ratio = median of paired block ratios (1-worker seconds / 2-worker seconds)"]
    return BenchResult("ray_scaling", median(paired), TARGET, "throughput 2 workers/1 worker (median of blocks)",
                       raw, notes)
