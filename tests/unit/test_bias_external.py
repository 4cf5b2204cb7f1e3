"""Results made elsewhere: a table of per-participant outcomes gets the same statistics, no model called."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from scipy import stats as sps

from personae.api import run_study
from personae.backends.fake import FakeBackend
from personae.errors import ConfigError
from personae.spec import resolve_spec


def write_outcomes(path: Path) -> None:
    """Democrat: congruent 45/60 correct, incongruent 24/60 (identity); neutral 40/60 and 38/60."""
    rows = []
    cells = {("identity", 1): (45, 15), ("identity", 0): (24, 36), ("neutral", 1): (40, 20), ("neutral", 0): (38, 22)}
    for (frame, cong), (k, w) in cells.items():
        for j in range(k + w):
            rows.append({"model": "paper/gpt", "persona": "democrat", "participant": f"p{j % 30}", "arm": "none",
                         "item": f"gun.{frame}.{j % 4}", "frame": frame, "congruent": cong, "correct": int(j < k)})
    for j in range(8):  # no persona: congruence unknown (blank)
        rows.append({"model": "paper/gpt", "persona": "", "participant": f"n{j}", "arm": "none", "item": "gun",
                     "frame": "identity", "congruent": "", "correct": j % 2})
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def spec(results: list[str]) -> dict:
    return {"study": "bias", "model": "fake/x", "seed": 1, "options": {"results": results}}


def test_a_results_table_gets_the_numeracy_and_vda_statistics(tmp_path: Path) -> None:
    write_outcomes(tmp_path / "outcomes.csv")
    dem = [0.62, 0.71, 0.55, 0.68, 0.74, 0.6]
    rep = [0.52, 0.49, 0.58, 0.45, 0.5, 0.57]
    (tmp_path / "vda.jsonl").write_text("\n".join(
        json.dumps({"model": "paper/gpt", "persona": p, "participant": i, "vda": v})
        for p, vs in (("democrat", dem), ("republican", rep)) for i, v in enumerate(vs)) + "\n", encoding="utf-8")
    resolved = resolve_spec(spec(["outcomes.csv", "vda.jsonl"]), path=tmp_path / "spec.yaml")
    backend = FakeBackend("fake/x")
    outcome = run_study(resolved, backends={"fake/x": backend})
    assert backend.history == []
    rows = {(r["task"], r["persona"]): r for r in outcome.summary.table}
    d = rows[("numeracy", "democrat")]
    assert d["acc_congruent"] == 0.75 and d["acc_incongruent"] == 0.4 and d["rr"] == pytest.approx(1.875)
    assert d["p_fisher"] == pytest.approx(sps.fisher_exact([[45, 15], [24, 36]]).pvalue)
    assert d["participants"] == 30
    assert rows[("numeracy", "none")]["accuracy_identity"] == 0.5
    test = outcome.summary.stats["veracity_tests"][0]
    assert test["comparison"] == "democrat vs republican"
    assert test["p"] == pytest.approx(sps.ttest_ind(dem, rep, equal_var=False).pvalue)
    assert outcome.summary.notes[0].startswith("results made elsewhere: 248 numeracy outcomes")


def test_a_bad_row_is_refused_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("persona,participant,correct\ndemocrat,1,1\ndemocrat,2,maybe\n",
                                      encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.csv:3: field 'correct': 'maybe' is not 1/0 or true/false"):
        from personae.studies.bias import BiasStudy  # noqa: PLC0415

        BiasStudy.check(resolve_spec(spec(["bad.csv"]), path=tmp_path / "spec.yaml"))
