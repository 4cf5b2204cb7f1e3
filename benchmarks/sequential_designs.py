"""sequential_designs: a sequential design (always-valid betting CS, a look every 20 items) vs the
fixed design (every item), over simulated accuracy and bias studies.

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
- Bias, the same two checks on the bias study's unit values (personae.bias.sequential), one
  identity persona against no persona, N = 200 units:
  numeracy: an identity-frame item, 3 templates x K = 5 participants of the persona and K of no
  persona (4 K requests per item); no persona's accuracy p_q ~ Uniform(0.3, 0.85), the persona's
  p_q + s delta (s = +1 congruent, -1 incongruent, half the items each, clipped), and the unit value
  s (a_persona - a_no_persona) in [-1, 1] has mean delta (the congruence gap beyond no persona, halved).
  veracity: a headline (half real), K ratings 1-6 from each arm (2 K requests); no persona's
  ratings round(Normal(mu_h, 1.2)) clipped to 1-6 with mu_h ~ Uniform(2, 5), the persona's mu_h +
  5 s delta (s = +1 real, -1 fake); the unit value s (r_persona - r_no_persona) / 5 in [-1, 1]
  (mean about delta, the VDA difference). The fixed design's test for the MDE is the paired t test
  on the N unit values; the effect is +2 x MDE. At a fixed d_z, the smaller a unit's spread is
  against its known bounds, the later the CS decides: its bets start from the largest variance the
  bounds allow (1/4 on [0, 1], the prior of the paper's eq. 26) and learn the real spread as units
  arrive. Accuracy's differences (sd 0.30 of a range of 2) meet the target; bias numeracy (sd 0.24,
  more participants per persona) is near it, bias veracity (sd 0.15: K ratings averaged) is not.
- Plumbing: a few accuracy studies through `run_study` and the fake backend (the built-in bank of
  84 items, 3 replicates, look every 10), planted effect and none, read back from summary.json's
  stats.sequential; and a few bias studies the same way (veracity, 48 generated headlines, one
  persona, 4 participants, look every 8).

Ratio: fixed calls / sequential calls at 2 x MDE, the smallest over accuracy and the two bias
units, target >= 2 (= at most 50% of the calls); it is reported as 0 (MISS) when any null
false-positive rate is above 5%, since saving calls by calling effects that are not there is no saving.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
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


TEMPLATES = 3
"""Persona templates of the simulated bias numeracy study (the paper's three)."""


def _differences(rng: np.random.Generator, delta: float, n: int = N_ITEMS) -> np.ndarray:
    """Accuracy: a(q, c) - a(q, baseline), K replicates each."""
    p0 = rng.uniform(0.3, 0.85, n)
    p1 = np.clip(p0 + delta, 0.0, 1.0)
    return rng.binomial(K, p1) / K - rng.binomial(K, p0) / K


def _signs(rng: np.random.Generator, n: int) -> np.ndarray:
    """+1 / -1 for half the units each, in random order (congruent / incongruent, real / fake)."""
    return rng.permutation(np.resize([1.0, -1.0], n))


def _numeracy(rng: np.random.Generator, delta: float, n: int = N_ITEMS) -> np.ndarray:
    """Bias numeracy: s (a_persona - a_no_persona), TEMPLATES x K persona participants and K of no persona."""
    s = _signs(rng, n)
    p0 = rng.uniform(0.3, 0.85, n)
    p1 = np.clip(p0 + s * delta, 0.0, 1.0)
    return s * (rng.binomial(TEMPLATES * K, p1) / (TEMPLATES * K) - rng.binomial(K, p0) / K)


def _veracity(rng: np.random.Generator, delta: float, n: int = N_ITEMS) -> np.ndarray:
    """Bias veracity: s (r_persona - r_no_persona) / 5, K ratings 1-6 from each arm."""
    s = _signs(rng, n)
    mu = rng.uniform(2.0, 5.0, n)

    def rate(mean: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(rng.normal(mean[:, None], 1.2, (n, K))), 1, 6).mean(axis=1)

    return s * (rate(mu + 5 * s * delta) - rate(mu)) / 5


@dataclass(frozen=True)
class Unit:
    """One kind of paired unit the simulation draws: its values, requests per unit and effect sign."""

    name: str
    draw: Callable[..., np.ndarray]
    """(rng, delta[, n]) -> n unit values in [-1, 1] with mean (about) delta."""
    calls_per_unit: int
    sign: float
    """The planted effect is sign x 2 x MDE."""


UNITS = (Unit("accuracy", _differences, 2 * K, -1.0),
         Unit("bias_numeracy", _numeracy, (TEMPLATES + 1) * K, 1.0),
         Unit("bias_veracity", _veracity, 2 * K, 1.0))


def _mde(unit: Unit = UNITS[0]) -> tuple[float, float, float]:
    from statsmodels.stats.power import TTestPower

    rng = np.random.default_rng(SEED)
    sd = float(np.std(unit.draw(rng, 0.0, 200_000), ddof=1))
    dz = float(TTestPower().solve_power(nobs=N_ITEMS, alpha=ALPHA, power=0.8, alternative="two-sided"))
    return dz * sd, dz, sd


def _simulate(delta: float, seed: int, unit: Unit = UNITS[0]) -> dict[str, Any]:
    from scipy import stats as sps

    from personae.stats.sequential import betting_cs_at, stop_decision

    rng = np.random.default_rng(seed)
    looks = list(range(LOOK_EVERY, N_ITEMS + 1, LOOK_EVERY))
    items_used, called, wrong, peek, fixed_sig = [], 0, 0, 0, 0
    for _ in range(STUDIES):
        x = unit.draw(rng, delta)
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
    from personae.backends.base import Request
    from personae.items import builtin_items

    bank = builtin_items("general")

    def respond(request: Request) -> str:
        item = next(i for i in bank if i.question in request.last_user())
        system = next((m.content for m in request.messages if m.role == "system"), "")
        p = 0.7 + (delta if "a toddler" in system else 0.0)
        u = int.from_bytes(hashlib.sha256(request.model_dump_json(exclude={"tags"}).encode()).digest()[:8], "big")
        if u / 2**64 < p:
            return str(item.answer_letter)
        return next(x for x in item.letters if x != item.answer_letter)

    def spec(model: str, r: int, tmp: Path) -> dict[str, Any]:
        return {"study": "accuracy", "model": model, "replicates": 3, "seed": 100 + r,
                "sampling": {"temperature": 0.7, "max_tokens": 4},
                "options": {"conditions": ["baseline", "toddler"], "n_bootstrap": 1000,
                            "sequential": {"look_every": 10}}}

    return _fake_runs(f"fake/seq-{'effect' if delta else 'null'}", delta, runs, spec, respond, "Accuracy changed for")


def _fake_runs(name: str, delta: float, runs: int, spec: Callable[[str, int, Path], dict[str, Any]],
               respond: Callable[..., str], called_when: str) -> dict[str, Any]:
    """`runs` studies through `run_study` and the fake backend (one store in a temp folder): the calls
    saved and stopping reason of each, read from stats.sequential, and how many verdicts hold `called_when`."""
    from personae.api import run_study
    from personae.backends.fake import FakeBackend
    from personae.spec import resolve_spec
    from personae.store import Store

    saved, called, stops = [], 0, []
    with tempfile.TemporaryDirectory(prefix="personae-bench-seq-") as tmp:
        store = Store(Path(tmp) / "store.sqlite")
        try:
            for r in range(runs):
                model = f"{name}-{r}"
                out = run_study(resolve_spec(spec(model, r, Path(tmp))), store=store,
                                backends={model: FakeBackend(model, responder=respond)})
                seq = out.summary.stats["sequential"]
                saved.append(seq["calls_saved"])
                stops.append(seq["stopped_because"])
                called += called_when in out.summary.verdict
        finally:
            store.close()
    return {"runs": runs, "delta": delta, "mean_calls_saved": float(np.mean(saved)), "effect_called": called,
            "stopped_because": stops}


def _design(unit: Unit, seed: int) -> dict[str, Any]:
    """MDE, null and 2 x MDE simulations of one unit kind, printed."""
    mde, dz, sd = _mde(unit)
    calls = unit.calls_per_unit * N_ITEMS
    say(f"  {unit.name}: fixed design {N_ITEMS} units x {unit.calls_per_unit} calls = {calls} calls; MDE (80% power, "
        f"alpha {ALPHA}) d_z = {dz:.3f}, sd of a unit value {sd:.3f}, delta = {mde:.4f}")
    null = _simulate(0.0, seed, unit)
    effect = _simulate(unit.sign * 2 * mde, seed + 1, unit)
    fp_ok = null["effect_called"] <= TARGET_FP
    share_ok = effect["share_of_fixed_calls"] <= TARGET_SHARE
    say(f"    null: false positives {null['effect_called']:.3f} (target <= {TARGET_FP}) {'PASS' if fp_ok else 'MISS'}; "
        f"naive t test at every look {null['naive_peek_t_significant']:.3f}, fixed design "
        f"{null['fixed_design_t_significant']:.3f}; calls {null['share_of_fixed_calls']:.3f} of fixed")
    say(f"    effect {unit.sign * 2:+.0f} x MDE: calls {effect['share_of_fixed_calls']:.3f} of fixed (target <= "
        f"{TARGET_SHARE}) {'PASS' if share_ok else 'MISS'}; effect called {effect['effect_called']:.3f} (fixed "
        f"design's power {effect['fixed_design_t_significant']:.3f}), wrong direction {effect['wrong_direction']:.3f}")
    return {"calls_per_unit": unit.calls_per_unit, "mde_delta": round(mde, 4), "mde_dz": round(dz, 4),
            "sd_unit": round(sd, 4), "null": null, "effect_2x_mde": effect, "fp_ok": fp_ok,
            "ratio": 1 / effect["share_of_fixed_calls"] if fp_ok else 0.0}


def _bias_plumbing(delta: float, runs: int = 3) -> dict[str, Any]:
    """A few bias studies (veracity, one persona) through the runner and the fake backend: the persona
    rates real headlines up and fake ones down by 5 x delta, no persona rates 2-5 whatever the veracity."""
    from personae.backends.base import Request

    def respond(request: Request) -> str:
        u = int.from_bytes(hashlib.sha256(request.model_dump_json(exclude={"tags"}).encode()).digest()[:8], "big")
        shift = 0.0
        if any(m.role == "system" and "Democrat" in m.content for m in request.messages):
            shift = 5 * delta * (-1 if "shocking" in request.last_user() else 1)
        return str(int(np.clip(round(3.5 + shift + (u / 2**64 - 0.5) * 3), 1, 6)))

    def spec(model: str, r: int, tmp: Path) -> dict[str, Any]:
        headlines = tmp / "headlines.csv"
        headlines.write_text("id,headline,veracity\n" + "".join(
            f"h{k:02d},Report {k} on the {'' if k % 2 else 'shocking '}news,{'real' if k % 2 else 'fake'}\n"
            for k in range(48)), encoding="utf-8")
        return {"study": "bias", "model": model, "replicates": 4, "seed": 100 + r,
                "sampling": {"temperature": 0.7, "max_tokens": 4},
                "options": {"tasks": ["veracity"], "headlines": str(headlines), "identities": ["democrat"],
                            "templates": ["you-are"], "arms": ["none"], "mode": "generate",
                            "sequential": {"look_every": 8}}}

    return _fake_runs(f"fake/seq-bias-{'effect' if delta else 'null'}", delta, runs, spec, respond,
                      "persona vs no persona comparisons differ:")


def run() -> BenchResult:
    os.environ.setdefault("PERSONAE_QUIET", "1")
    t0 = time.perf_counter()
    designs = {unit.name: _design(unit, SEED + 1 + 10 * k) for k, unit in enumerate(UNITS)}
    t_sim = time.perf_counter() - t0
    t1 = time.perf_counter()
    plumbing = {"fake_backend_effect": _plumbing(-0.3), "fake_backend_null": _plumbing(0.0),
                "fake_backend_bias_effect": _bias_plumbing(0.4), "fake_backend_bias_null": _bias_plumbing(0.0)}
    for study, effect, null in (("accuracy", "fake_backend_effect", "fake_backend_null"),
                                ("bias", "fake_backend_bias_effect", "fake_backend_bias_null")):
        e, n = plumbing[effect], plumbing[null]
        say(f"  fake backend, {study}: planted effect {e['delta']:+g}: calls saved {e['mean_calls_saved']:.2f}, effect "
            f"called in {e['effect_called']}/{e['runs']}; none: calls saved {n['mean_calls_saved']:.2f}, effect called "
            f"in {n['effect_called']}/{n['runs']}")
    ratio = min(d["ratio"] for d in designs.values())
    acc = designs["accuracy"]
    raw: dict[str, Any] = {
        "items_fixed": N_ITEMS, "replicates": K, "look_every": LOOK_EVERY, "alpha": ALPHA,
        "mde_delta": acc["mde_delta"], "mde_dz": acc["mde_dz"], "null": acc["null"], "effect_2x_mde": acc["effect_2x_mde"],
        "bias_numeracy": designs["bias_numeracy"], "bias_veracity": designs["bias_veracity"],
        "ratio_per_unit": {k: round(d["ratio"], 3) for k, d in designs.items()}, **plumbing,
        "simulation_seconds": round(t_sim, 1), "fake_backend_seconds": round(time.perf_counter() - t1, 1),
    }
    notes = ["method: hedged betting CS (Waudby-Smith & Ramdas 2024), a look every 20 items, stop: decision",
             "units: accuracy a(q,c) - a(q,baseline); bias numeracy s (a_persona - a_no_persona); bias veracity "
             "s (r_persona - r_no_persona) / 5; all in [-1, 1]",
             "ratio = the smallest fixed calls / sequential calls at 2 x MDE over the three units, 0 for a unit whose "
             "null false-positive rate exceeds 5%"]
    return BenchResult("sequential_designs", ratio, 1 / TARGET_SHARE, "fixed/sequential calls at 2xMDE (FP <= 5%)",
                       raw, notes)
