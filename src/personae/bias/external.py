"""Results made elsewhere: a table of per-participant outcomes analysed with the bias statistics.

One CSV or JSONL file (or several), one row per outcome, no model called. Columns:
- `model` (default 'external'), `persona` (blank or 'none': no persona), `participant`,
  `arm` (default 'none'), `template` (default 'external');
- numeracy rows: `item`, `correct` (1/0, true/false), `congruent` (1/0, true/false; blank: the item
  does not touch the persona's identity), `frame` (identity or neutral; default identity);
- veracity rows: `vda` (one number per participant).
A row with `vda` is a veracity row, a row with `correct` a numeracy row; `personae validate` says
how many of each it read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._loading import read_documents, read_text
from ..errors import ConfigError
from .analysis import Answer

TRUE = {"1", "true", "yes", "t", "1.0"}
FALSE = {"0", "false", "no", "f", "0.0"}


@dataclass(frozen=True)
class External:
    """What a results file holds."""

    answers: tuple[Answer, ...]
    """Numeracy outcomes."""
    vda: dict[tuple[str, str, str], list[float]]
    """(model, arm, persona) -> VDA of each participant."""

    def describe(self) -> str:
        n_vda = sum(len(v) for v in self.vda.values())
        return (f"results made elsewhere: {len(self.answers)} numeracy outcomes (correct, congruent, frame) and "
                f"{n_vda} participant VDAs; no model is called.")


def _flag(value: Any, file: str, line: int | None, field: str, *, blank_ok: bool) -> bool | None:
    word = "" if value is None else str(value).strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    if word in ("", "none", "na", "nan") and blank_ok:
        return None
    raise ConfigError(f"'{value}' is not 1/0 or true/false.", file=file, line=line, field=field,
                      fix=f"write 1 or 0 in '{field}'" + (" (blank when unknown)." if blank_ok else "."))


def _rows(path: Path) -> list[tuple[dict[str, Any], int | None]]:
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(read_text(path)))
        return [({str(k).strip().lower(): v for k, v in r.items()}, reader.line_num) for r in reader]
    if path.suffix.lower() != ".jsonl":
        raise ConfigError(f"unknown file type '{path.suffix}'.", file=str(path), field="options.results",
                          fix="give a .csv or .jsonl file of per-participant outcomes.")
    return [({str(k).lower(): v for k, v in d.items()}, lines.get(())) for d, lines in read_documents(path)
            if isinstance(d, dict)]


def load_external(paths: Sequence[Path]) -> External:
    """Read the results files (the layout of the module docstring)."""
    answers: list[Answer] = []
    vda: dict[tuple[str, str, str], list[float]] = {}
    for path in paths:
        for row, line in _rows(path):
            file = str(path)
            model = str(row.get("model") or "external")
            persona = str(row.get("persona") or "none").strip() or "none"
            arm = str(row.get("arm") or "none")
            if "participant" not in row or row["participant"] in (None, ""):
                raise ConfigError("the row has no participant.", file=file, line=line, field="participant",
                                  fix="add a 'participant' column (any id, unique within a persona and arm).")
            if row.get("vda") not in (None, ""):
                try:
                    value = float(row["vda"])
                except ValueError:
                    raise ConfigError(f"vda '{row['vda']}' is not a number.", file=file, line=line, field="vda",
                                      fix="write the participant's VDA as a number between 0 and 1.") from None
                vda.setdefault((model, arm, persona), []).append(value)
                continue
            if row.get("correct") in (None, ""):
                raise ConfigError("the row has neither 'correct' nor 'vda'.", file=file, line=line, field="correct",
                                  fix="give 'correct' (1/0) for a numeracy outcome or 'vda' for a veracity one.")
            frame = str(row.get("frame") or "identity").strip().lower()
            if frame not in ("identity", "neutral"):
                raise ConfigError(f"frame '{frame}' is neither identity nor neutral.", file=file, line=line,
                                  field="frame", fix="write identity (or blank) or neutral (the control).")
            answers.append(Answer(
                model=model, arm=arm, template=str(row.get("template") or "external"),
                persona=None if persona == "none" else persona, participant=str(row["participant"]),
                item=str(row.get("item") or ""), vignette=str(row.get("item") or ""), axis=str(row.get("axis") or "any"),
                frame=frame, congruent=_flag(row.get("congruent"), file, line, "congruent", blank_ok=True),
                correct=_flag(row["correct"], file, line, "correct", blank_ok=False)))
    if not answers and not vda:
        raise ConfigError("the results files hold no row.", file=str(paths[0]) if paths else None,
                          field="options.results", fix="add one row per outcome (see docs/studies/bias.md).")
    return External(tuple(answers), vda)
