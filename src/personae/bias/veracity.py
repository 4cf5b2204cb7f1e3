"""Task A, veracity discernment: headlines rated 1-6 for accuracy, VDA per simulated participant.

VDA = 0.5 + (mean rating of real headlines - mean rating of fake ones) / 10 (METHODS.md section 8;
inferred from the paper's data): 0.5 is no discernment, 1.0 rates every real headline 6 and every
fake one 1. Each persona is compared with the no-persona baseline of its arm, and each identity
pair (Democrat vs Republican, ...) with each other: difference of mean VDA over participants,
Welch's t-test with its CI (scipy.stats.ttest_ind, equal_var=False), Holm-adjusted per model.
Each difference sits next to its split-half noise floor (stats.split_half_floor): both groups'
participants split at random into halves, 200 seeded times; the SD of the difference computed on
the first halves minus the one on the second halves is the run-to-run spread of the same
comparison. A difference within it is "not distinguishable from noise".

Headline files: the built-in set, or the user's own YAML ({headlines: [...]} or a list), JSONL or
CSV; columns/fields: the text from `headline` (or `text`, `statement`, or `item` when there is no
`headline`), the id from `id` (or `item_id`, or `item` when `headline` holds the text; else the row
number), and `veracity` (or `label`, `truth`): real/true/1 or fake/false/0 — the MIST-20 layout
(item, headline, veracity real/fake) reads as published.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .._loading import read_documents, read_text
from ..errors import ConfigError
from .instruments import instrument_path

RATING_PROMPT = ("How accurate is this news headline?\n\n\"{headline}\"\n\nRate it from 1 (not at all accurate) to "
                 "6 (very accurate). Answer with one number only.")
RATINGS = "123456"
PAIRS = (("democrat", "republican"), ("religious", "atheist"), ("college-educated", "high-school"), ("woman", "man"))
"""Identity pairs compared with each other (first minus second) when both are asked."""
TRUE_WORDS = {"real", "true", "1", "yes", "t", "news", "fact"}
FALSE_WORDS = {"fake", "false", "0", "no", "f", "misinformation"}


class Headline(BaseModel):
    """One headline with its veracity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    """Headline id, unique in the set."""
    text: str = Field(min_length=1)
    """The headline as shown."""
    real: bool
    """True for a real (true) headline, False for a fake one."""


def _veracity(value: Any, file: str, line: int | None) -> bool:
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"veracity '{value}' is neither real nor fake.", file=file, line=line, field="veracity",
                      fix="write real/true/1 for a true headline and fake/false/0 for a false one.")


def _pick(row: dict[str, Any], names: Sequence[str]) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in row.items()}
    return next((lowered[n] for n in names if n in lowered and lowered[n] not in (None, "")), None)


def headline_from_row(row: dict[str, Any], n: int, file: str, line: int | None) -> Headline:
    """A headline from one record of a user's file (the field aliases of the module docstring)."""
    keys = {str(k).strip().lower() for k in row}
    text = _pick(row, ("headline", "text", "statement") if "headline" in keys else ("text", "statement", "item"))
    if text is None:
        raise ConfigError("the record has no headline text.", file=file, line=line, field="headline",
                          fix="name the text column 'headline' (or 'text', 'statement', 'item').")
    ident = _pick(row, ("id", "item_id", "item") if "headline" in keys else ("id", "item_id"))
    ver = _pick(row, ("veracity", "label", "truth", "real"))
    if ver is None:
        raise ConfigError("the record has no veracity.", file=file, line=line, field="veracity",
                          fix="add a 'veracity' column with real or fake.")
    return Headline(id=str(ident) if ident is not None else f"h{n + 1}", text=str(text).strip(),
                    real=_veracity(ver, file, line))


def load_headlines(ref: str, base_dir: Path, *, field: str = "options.headlines") -> tuple[Headline, ...]:
    """'builtin' or a YAML/JSON/JSONL/CSV file relative to the spec."""
    path = instrument_path(ref, base_dir, "headlines.yaml")
    if not path.is_file():
        raise ConfigError(f"the headlines file '{ref}' was not found.", file=str(path), field=field,
                          fix="write 'headlines: builtin' or give a YAML, JSON, JSONL or CSV file relative to the spec.")
    records = _records(path)
    out = [headline_from_row(r, n, str(path), line) for n, (r, line) in enumerate(records)]
    seen: dict[str, int] = {}
    for h, (_, line) in zip(out, records):
        if h.id in seen:
            raise ConfigError(f"headline id '{h.id}' appears twice.", file=str(path), line=line, field="id",
                              fix="give every headline a unique id.")
        seen[h.id] = 1
    if not any(h.real for h in out) or all(h.real for h in out):
        raise ConfigError("VDA needs real and fake headlines, and the file holds only one kind.", file=str(path),
                          field="veracity", fix="add headlines of the other veracity.")
    return tuple(out)


def _records(path: Path) -> list[tuple[dict[str, Any], int | None]]:
    if path.suffix.lower() == ".csv":
        text = read_text(path)
        reader = csv.DictReader(io.StringIO(text))
        rows = [(dict(r), reader.line_num) for r in reader]
        if not rows:
            raise ConfigError("the file has no rows.", file=str(path), fix="add a header line and one row per headline.")
        return rows
    docs = read_documents(path)
    if path.suffix.lower() == ".jsonl":
        return [(d, lines.get(())) for d, lines in docs]
    data, lines = docs[0]
    items = data.get("headlines") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ConfigError("expected a list of headlines (or {headlines: [...]}).", file=str(path), line=1,
                          fix="write one mapping per headline with headline/text, id and veracity.")
    return [(r, lines.get(("headlines", i)) or lines.get((i,))) for i, r in enumerate(items)]


# ---------------------------------------------------------------- statistics
@dataclass(frozen=True)
class Rating:
    """One simulated participant's rating of one headline (None: failed request or unparseable)."""

    model: str
    arm: str
    template: str
    persona: str | None
    participant: int
    headline: str
    real: bool
    rating: int | None
    error: bool = False


def parse_rating(text: str | None) -> int | None:
    """The first digit 1-6 standing alone in a reply (not part of 10 or 3.5), or None."""
    import re  # noqa: PLC0415

    if not text:
        return None
    found = re.search(r"(?<![\d.])([1-6])(?!\d|\.\d)", text)
    return int(found.group(1)) if found else None


def vda(ratings: Sequence[Rating]) -> float | None:
    """0.5 + (mean rating of real - mean rating of fake) / 10, over one participant's rated headlines."""
    real = [r.rating for r in ratings if r.real and r.rating is not None]
    fake = [r.rating for r in ratings if not r.real and r.rating is not None]
    if not real or not fake:
        return None
    return 0.5 + (sum(real) / len(real) - sum(fake) / len(fake)) / 10


def participant_vda(ratings: Sequence[Rating]) -> dict[tuple[str, str, str], list[float]]:
    """(model, arm, persona) -> VDA of each participant who rated every headline (a participant with a
    failed or unparseable rating is dropped and counted by the caller)."""
    groups: dict[tuple[str, str, str, str, int], list[Rating]] = {}
    for r in ratings:
        groups.setdefault((r.model, r.arm, r.persona or "none", r.template, r.participant), []).append(r)
    out: dict[tuple[str, str, str], list[float]] = {}
    for (model, arm, persona, _, _), rs in groups.items():
        out.setdefault((model, arm, persona), [])
        if all(r.rating is not None for r in rs):
            v = vda(rs)
            if v is not None:
                out[(model, arm, persona)].append(v)
    return out


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, Any] | None:
    """mean(a) - mean(b) with Welch's t-test and its 95% CI (scipy.stats.ttest_ind, equal_var=False)."""
    from scipy import stats as sps  # noqa: PLC0415

    if len(a) < 2 or len(b) < 2:
        return None
    diff = sum(a) / len(a) - sum(b) / len(b)
    if max(a) == min(a) and max(b) == min(b):
        return {"diff": diff, "ci": [diff, diff], "t": None, "p": None, "df": None, "n": [len(a), len(b)],
                "note": "no spread in either group: no test"}
    res = sps.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    return {"diff": diff, "ci": [float(ci.low), float(ci.high)], "t": float(res.statistic),
            "p": float(res.pvalue), "df": float(res.df), "n": [len(a), len(b)]}


def vda_noise_floor(a: Sequence[float], b: Sequence[float], *, seed: int, n_splits: int = 200) -> float | None:
    """Split-half noise floor of mean(a) - mean(b): SD over splits of the difference on the first
    halves minus the one on the second halves (each group split on its own; stats.split_half_floor)."""
    from ..stats import split_half_floor  # noqa: PLC0415

    res = split_half_floor([list(a), list(b)], lambda h: sum(h[0]) / len(h[0]) - sum(h[1]) / len(h[1]),
                           seed=seed, n_splits=n_splits)
    return None if math.isnan(res.estimate) else res.estimate


def veracity_table(ratings: Sequence[Rating], per: dict[tuple[str, str, str], list[float]] | None = None, *,
                   seed: int = 0, n_splits: int = 200) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows per (model, arm, persona) with mean VDA and its t CI, and the comparisons (vs baseline, pairs)
    each with its split-half noise floor (seeded from `seed` and the comparison). `per` gives the
    participants' VDAs directly (results made elsewhere); default: from the ratings. A persona's row
    repeats its comparison with no persona (vda_diff, its CI, Holm p, noise floor)."""
    from ..stats import holm, mean_ci  # noqa: PLC0415
    from ..studies._cells import derive_seed  # noqa: PLC0415

    per = participant_vda(ratings) if per is None else per
    rows = []
    for (model, arm, persona), values in per.items():
        mine = [r for r in ratings if (r.model, r.arm, r.persona or "none") == (model, arm, persona)]
        est = mean_ci(values) if values else None
        rows.append({"model": model, "arm": arm, "persona": persona, "participants": len(values),
                     "dropped_participants": len({(r.template, r.participant) for r in mine}) - len(values)
                     if mine else 0,
                     "vda": est.estimate if est else None,
                     "vda_ci": [est.ci_low, est.ci_high] if est and not math.isnan(est.ci_low) else None,
                     "mean_real": _mean([r.rating for r in mine if r.real and r.rating is not None]),
                     "mean_fake": _mean([r.rating for r in mine if not r.real and r.rating is not None]),
                     "errors": sum(r.error for r in mine),
                     "parse_failures": sum(r.rating is None and not r.error for r in mine)})
    tests = []

    def compare(model: str, arm: str, a: str, b: str, label: str) -> None:
        w = welch(per[(model, arm, a)], per[(model, arm, b)])
        if w:
            floor = vda_noise_floor(per[(model, arm, a)], per[(model, arm, b)], n_splits=n_splits,
                                    seed=derive_seed(seed, "noise-floor", model, arm, label))
            tests.append({"model": model, "arm": arm, "comparison": label, "persona": a, "against": b, **w,
                          "noise_floor": floor,
                          "within_noise_floor": None if floor is None else abs(w["diff"]) <= floor})

    for model, arm, persona in per:
        if persona != "none" and (model, arm, "none") in per:
            compare(model, arm, persona, "none", f"{persona} vs no persona")
    for a, b in PAIRS:
        for model, arm in dict.fromkeys((m, x) for m, x, _ in per):
            if (model, arm, a) in per and (model, arm, b) in per:
                compare(model, arm, a, b, f"{a} vs {b}")
    for model in dict.fromkeys(t["model"] for t in tests):
        mine = [t for t in tests if t["model"] == model and t["p"] is not None]
        for t, adj in zip(mine, holm([t["p"] for t in mine]) if mine else []):
            t["p_holm"] = float(adj)
    vs_none = {(t["model"], t["arm"], t["comparison"]): t for t in tests}
    for r in rows:
        t = vs_none.get((r["model"], r["arm"], f"{r['persona']} vs no persona"))
        if t is not None:
            r.update(vda_diff=t["diff"], vda_diff_ci=t["ci"], vda_p_holm=t.get("p_holm"),
                     vda_noise_floor=t["noise_floor"], within_noise_floor=t["within_noise_floor"])
    return rows, tests


def _mean(xs: Sequence[int]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def vda_significant(t: dict[str, Any], sequential: bool = False) -> bool:
    """Holm-adjusted Welch p < 0.05 and the CI of the difference excludes 0 (the floor not yet asked);
    with a sequential design `vda_cs_agrees` instead (the fixed-sample p is not valid after looking)."""
    if sequential:
        return vda_cs_agrees(t)
    p = t.get("p_holm")
    return p is not None and p < 0.05 and (t["ci"][0] > 0 or t["ci"][1] < 0)


def vda_cs_agrees(t: dict[str, Any]) -> bool:
    """Sequential design: the comparison's always-valid CS (cs_low, cs_high: a persona against no
    persona; identity pairs have none) excludes 0 and Welch's CI excludes 0 on the same side."""
    lo, hi = t.get("cs_low"), t.get("cs_high")
    return lo is not None and hi is not None and ((lo > 0 and t["ci"][0] > 0) or (hi < 0 and t["ci"][1] < 0))


def vda_differs(t: dict[str, Any], sequential: bool = False) -> bool:
    """A VDA difference: Holm-adjusted Welch p < 0.05 (with a sequential design: `vda_cs_agrees`), the
    CI of the difference excludes 0 and the difference is larger than its split-half noise floor (an
    unknown floor distinguishes nothing)."""
    from ..stats import beyond_floor  # noqa: PLC0415

    return vda_significant(t, sequential) and beyond_floor(t["diff"], t["ci"], t.get("noise_floor"))


def _fmt_floor(t: dict[str, Any]) -> str:
    f = t.get("noise_floor")
    return "noise floor unknown" if f is None else f"noise floor {f:.3f}"


def _fmt_test(t: dict[str, Any], sequential: bool) -> str:
    cs = f", always-valid CS [{t['cs_low']:+.3f}, {t['cs_high']:+.3f}]" if sequential and t.get("cs_low") is not None \
        else ""
    return (f"{t['comparison']} ({t['arm']}) {t['diff']:+.3f} [{t['ci'][0]:+.3f}, {t['ci'][1]:+.3f}]{cs}, "
            f"{_fmt_floor(t)}")


def veracity_verdict(rows: Sequence[dict[str, Any]], tests: Sequence[dict[str, Any]], *,
                     sequential: bool = False) -> str:
    """What the veracity task found, from its rows and tests only. With a sequential design
    (`sequential`) only the comparisons with an always-valid CS (each persona against no persona)
    are decided, from that CS (`vda_cs_agrees`); the identity pairs' Welch figures are shown, not decided."""
    if not rows:
        return ""
    parts = []
    for model in dict.fromkeys(r["model"] for r in rows):
        base = [r for r in rows if r["model"] == model and r["persona"] == "none" and r["arm"] == "none"
                and r["vda"] is not None]
        said = [f"Veracity discernment (no-persona VDA {base[0]['vda']:.3f}):" if base else "Veracity discernment:"]
        every = [t for t in tests if t["model"] == model]
        mine = [t for t in every if not sequential or t.get("cs_low") is not None]
        hits = [t for t in mine if vda_differs(t, sequential)]
        noise = [t for t in mine if vda_significant(t, sequential) and not vda_differs(t, sequential)]
        kind = "persona vs no persona comparisons" if sequential else \
            "comparisons (each persona vs no persona, each identity pair)"
        rule = ("always-valid CS of the difference from no persona excludes 0, Welch's CI agrees, larger than the "
                "noise floor" if sequential else "Holm-adjusted Welch p < 0.05, CI excludes 0, larger than the noise "
                "floor")
        if not mine:
            said.append("no comparison could be made (fewer than 2 participants with every headline rated).")
        elif hits:
            said.append(f"{len(hits)} of {len(mine)} {'persona vs no persona ' if sequential else ''}comparisons "
                        "differ: " + "; ".join(_fmt_test(t, sequential) for t in hits) + f" ({rule}).")
        else:
            said.append(f"none of the {len(mine)} {kind} differs (called when: {rule})." if sequential else
                        f"none of the {len(mine)} {kind} differs (Holm-adjusted Welch, alpha 0.05, with the CI "
                        "excluding 0 and the difference larger than the noise floor).")
        if noise:
            said.append("; ".join(_fmt_test(t, sequential) for t in noise)
                        + f" {'passes' if len(noise) == 1 else 'pass'} {'the CS' if sequential else 'Welch and Holm'} "
                        "but not the noise floor (the split-half spread of the same comparison): not "
                        "distinguishable from noise.")
        if sequential:
            fixed_only = [t for t in mine if vda_significant(t) and not vda_cs_agrees(t)]
            if fixed_only:
                said.append("For " + ", ".join(f"{t['comparison']} ({t['arm']})" for t in fixed_only) + " Welch's "
                            "test and CI point to a difference but the always-valid CS includes 0 or points the other "
                            "way (fixed-sample figures are not valid after looking at the data): not counted.")
            pairs = [t for t in every if t.get("cs_low") is None]
            if pairs:
                said.append(f"The {len(pairs)} identity-pair comparisons have no always-valid CS in a sequential design: "
                            "their Welch figures are in stats.veracity_tests, not decided here.")
        dropped = sum(r["dropped_participants"] for r in rows if r["model"] == model)
        if dropped:
            said.append(f"{dropped} participants with a failed or unparseable rating were left out.")
        parts.append(f"{model}: " + " ".join(said))
    return " ".join(parts)
