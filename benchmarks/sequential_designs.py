"""sequential_designs: a sequential design (always-valid betting CS, a look every 20 items) vs the
fixed design (every item), over simulated accuracy studies.

Simulation at the level of the statistics (fast): a study is a bank of N = 200 items, K = 5
replicates per (item, condition), one condition against the no-persona baseline (2 K requests per
item). Item difficulty varies: the baseline's per-item accuracy p_q ~ Uniform(0.3, 0.85), the
condition's is p_q + delta (clipped to [0, 1]); a(q, c) is the share correct of K Bernoulli draws,
and the paired unit is a(q, c) - a(q, baseline) in [-1, 1], as in the accuracy study.

- MDE: the smallest |delta| the fixed design detects with 80% power at alpha 0.05 (two-sided
  paired t test on the N differences, statsmodels TTestPower), delta = d_z x sd of a difference
  (sd from 200,000 simulated items with delta = 0).
- Null (delta = 0), >= 500 studies: false positives = studies whose CS excluded 0 at some look
  (the design calls an effect). Target <= 5%. For contrast: a paired t test at every look (the
  naive peek), and the fixed design's t test once at N.
- Effect (delta = -2 x MDE, a harmful persona), >= 500 studies: mean calls of the sequential design
  over the fixed design's 2 K N. Target <= 50%. Power and wrong-direction calls printed too.
- Plumbing: a few accuracy studies through `run_study` and the fake backend (the built-in bank of
  84 items, 3 replicates, look every 10), planted effect and none, read back from summary.json's
  stats.sequential.

Ratio: fixed calls / sequential calls at 2 x MDE, target >= 2 (= at most 50% of the calls); it is
reported as 0 (MISS) when the null false-positive rate is above 5%, since saving calls by calling
effects that are not there is no saving.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import BenchResult, say

N_ITEMS = 200
K = 5
LOOK_EVERY = 20
ALPHA = 0.05
STUDIES = 600
SEED = 12
TARGET_FP = 0.05
TARGET_SHARE = 0.5


def _differences(rng: np.random.Generator, delta: float) -> np.ndarray:
    p0 = rng.uniform(0.3, 0.85, N_ITEMS)
    p1 = np.clip(p0 + delta, 0.0, 1.0)
    return rng.binomial(K, p1) / K - rng.binomial(K, p0) / K


def _mde() -> tuple[float, float, float]:
    from statsmodels.stats.power import TTestPower

    rng = np.random.default_rng(SEED)
    p0 = rng.uniform(0.3, 0.85, 200_000)
    sd = float(np.std(rng.binomial(K, p0) / K - rng.binomial(K, p0) / K, ddof=1))
    dz = float(TTestPower().solve_power(nobs=N_ITEMS, alpha=ALPHA, power=0.8, alternative="two-sided"))
    return dz * sd, dz, sd


def _simulate(delta: float, seed: int) -> dict[str, Any]:
    from scipy import stats as sps

    from personae.stats.sequential import betting_cs_at, stop_decision

    rng = np.random.default_rng(seed)
    looks = list(range(LOOK_EVERY, N_ITEMS + 1, LOOK_EVERY))
    items_used, called, wrong, peek, fixed_sig = [], 0, 0, 0, 0
    for _ in range(STUDIES):
        x = _differences(rng, delta)
        stop_at, call = N_ITEMS, 0
        for cs in betting_cs_at(x, looks, alpha=ALPHA, bounds=(-1.0, 1.0)):
            d = stop_decision([cs], [0.0], rule="decision", exhausted=cs.n >= N_ITEMS)
            if d.stop:
                stop_at = cs.n
                if d.reason == "decision":
                    call = 1 if cs.cs_low > 0 else -1
                break
        items_used.append(stop_at)
        called += call != 0
        wrong += (call == 1 and delta < 0) or (call == -1 and delta > 0)
        peek += any(sps.ttest_1samp(x[:n], 0.0).pvalue < ALPHA for n in looks)
        fixed_sig += bool(sps.ttest_1samp(x, 0.0).pvalue < ALPHA)
    share = float(np.mean(items_used)) / N_ITEMS
    return {"studies": STUDIES, "delta": delta, "share_of_fixed_calls": share, "calls_saved": 1 - share,
            "effect_called": called / STUDIES, "wrong_direction": wrong / STUDIES,
            "naive_peek_t_significant": peek / STUDIES, "fixed_design_t_significant": float(fixed_sig) / STUDIES,
            "items_used_median": float(np.median(items_used))}


def _plumbing(delta: float, runs: int = 3) -> dict[str, Any]:
    """A few accuracy studies through the runner and the fake backend."""
    from personae.api import run_study
    from personae.backends.base import Request
    from personae.backends.fake import FakeBackend
    from personae.items import builtin_items
    from personae.spec import resolve_spec
    from personae.store import Store

    bank = builtin_items("general")

    def respond(request: Request) -> str:
        item = next(i for i in bank if i.question in request.last_user())
        system = next((m.content for m in request.messages if m.role == "system"), "")
        p = 0.7 + (delta if "a toddler" in system else 0.0)
        u = int.from_bytes(hashlib.sha256(request.model_dump_json(exclude={"tags"}).encode()).digest()[:8], "big")
        if u / 2**64 < p:
            return str(item.answer_letter)
        return next(x for x in item.letters if x != item.answer_letter)

    saved, called, stops = [], 0, []
    with tempfile.TemporaryDirectory(prefix="personae-bench-seq-") as tmp:
        store = Store(Path(tmp) / "store.sqlite")
        try:
            for r in range(runs):
                model = f"fake/seq-{'effect' if delta else 'null'}-{r}"
                spec = {"study": "accuracy", "model": model, "replicates": 3, "seed": 100 + r,
                        "sampling": {"temperature": 0.7, "max_tokens": 4},
                        "options": {"conditions": ["baseline", "toddler"], "n_bootstrap": 1000,
                                    "sequential": {"look_every": 10}}}
                out = run_study(resolve_spec(spec), store=store, backends={model: FakeBackend(model, responder=respond)})
                seq = out.summary.stats["sequential"]
                saved.append(seq["calls_saved"])
                stops.append(seq["stopped_because"])
                called += "Accuracy changed for" in out.summary.verdict
        finally:
            store.close()
    return {"runs": runs, "delta": delta, "mean_calls_saved": float(np.mean(saved)), "effect_called": called,
            "stopped_because": stops}


def run() -> BenchResult:
    os.environ.setdefault("PERSONAE_QUIET", "1")
    t0 = time.perf_counter()
    mde, dz, sd = _mde()
    say(f"  fixed design: {N_ITEMS} items x {K} replicates x 2 arms = {2 * K * N_ITEMS} calls; MDE (80% power, "
        f"alpha {ALPHA}) d_z = {dz:.3f}, sd of a difference {sd:.3f}, delta = {mde:.4f}")
    null = _simulate(0.0, SEED + 1)
    effect = _simulate(-2 * mde, SEED + 2)
    t_sim = time.perf_counter() - t0
    fp_ok = null["effect_called"] <= TARGET_FP
    share_ok = effect["share_of_fixed_calls"] <= TARGET_SHARE
    say(f"  null: false positives {null['effect_called']:.3f} (target <= {TARGET_FP}) {'PASS' if fp_ok else 'MISS'}; "
        f"naive t test at every look {null['naive_peek_t_significant']:.3f}, fixed design "
        f"{null['fixed_design_t_significant']:.3f}; calls {null['share_of_fixed_calls']:.3f} of fixed")
    say(f"  effect 2 x MDE: calls {effect['share_of_fixed_calls']:.3f} of fixed (target <= {TARGET_SHARE}) "
        f"{'PASS' if share_ok else 'MISS'}; effect called {effect['effect_called']:.3f} (fixed design's power "
        f"{effect['fixed_design_t_significant']:.3f}), wrong direction {effect['wrong_direction']:.3f}")
    t1 = time.perf_counter()
    plumb_effect = _plumbing(-0.3)
    plumb_null = _plumbing(0.0)
    say(f"  fake backend: planted effect -0.3: calls saved {plumb_effect['mean_calls_saved']:.2f}, effect called in "
        f"{plumb_effect['effect_called']}/{plumb_effect['runs']}; none: calls saved "
        f"{plumb_null['mean_calls_saved']:.2f}, effect called in {plumb_null['effect_called']}/{plumb_null['runs']}")
    ratio = 1 / effect["share_of_fixed_calls"] if fp_ok else 0.0
    raw: dict[str, Any] = {
        "items_fixed": N_ITEMS, "replicates": K, "look_every": LOOK_EVERY, "alpha": ALPHA, "mde_delta": round(mde, 4),
        "mde_dz": round(dz, 4), "null": null, "effect_2x_mde": effect, "fake_backend_effect": plumb_effect,
        "fake_backend_null": plumb_null, "simulation_seconds": round(t_sim, 1),
        "fake_backend_seconds": round(time.perf_counter() - t1, 1),
    }
    notes = ["method: hedged betting CS (Waudby-Smith & Ramdas 2024), a look every 20 items, stop: decision",
             "ratio = fixed calls / sequential calls at 2 x MDE, 0 when the null false-positive rate exceeds 5%"]
    return BenchResult("sequential_designs", ratio, 1 / TARGET_SHARE, "fixed/sequential calls at 2xMDE (FP <= 5%)",
                       raw, notes)
