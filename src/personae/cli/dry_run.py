"""personae run SPEC --dry-run: the printed estimate (the work is personae.dryrun.estimate_run)."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from ..cost import with_price_file as with_prices
from ..dryrun import DryRun
from ._common import out, table_from_rows

__all__ = ["print_dry_run", "with_prices"]


def _n(value: int) -> str:
    return f"{value:,}"


def _cost(value: float | None) -> str:
    return "no price set" if value is None else f"{value:,.4f}"


def print_dry_run(est: DryRun, *, max_requests: int | None = None, max_tokens: int | None = None) -> None:
    later = "later waves (exact)" if not est.estimated else "later waves (estimated)"
    columns: list[tuple[str, Any]] = [
        ("model", lambda r: r.model), ("role", lambda r: r.role), ("wave 1 (exact)", lambda r: _n(r.first_wave)),
        (later, lambda r: _n(r.later_waves)), ("cached", lambda r: _n(r.cached)), ("to send", lambda r: _n(r.to_send)),
        ("prompt tokens (est.)", lambda r: _n(r.prompt_tokens)),
        ("completion tokens (max)", lambda r: _n(r.completion_tokens)), ("cost (est.)", lambda r: _cost(r.cost)),
    ]
    rows = [{name: get(r) for name, get in columns} for r in est.rows]
    if len(est.rows) > 1:
        rows.append({"model": "total", "role": "", "wave 1 (exact)": _n(est.total("first_wave")),
                     later: _n(est.total("later_waves")), "cached": _n(est.total("cached")),
                     "to send": _n(est.total("to_send")), "prompt tokens (est.)": _n(est.total("prompt_tokens")),
                     "completion tokens (max)": _n(est.total("completion_tokens")),
                     "cost (est.)": _cost(est.cost) if est.cost is not None else "incomplete: prices missing"})
    out.print(table_from_rows(rows, title="dry run: no model was called, nothing was written"))
    for line in explain(est) + budget_lines(est, max_requests, max_tokens):
        out.print(Text(line))


def budget_lines(est: DryRun, max_requests: int | None, max_tokens: int | None) -> list[str]:
    """What --max-requests / --max-tokens would do to this run."""
    lines = []
    to_send = est.total("to_send")
    if max_requests is not None:
        lines.append(f"--max-requests {max_requests:,}: " + (
            f"the run would stop after {max_requests:,} of the {to_send:,} requests to send (exit 3; the same "
            "command with a larger budget resumes)." if max_requests < to_send else
            f"enough for the {to_send:,} requests to send."))
    if max_tokens is not None:
        low, high = est.total("prompt_tokens"), est.total("prompt_tokens") + est.total("completion_tokens")
        lines.append(f"--max-tokens {max_tokens:,}: " + (
            f"the run would stop before the end (prompt tokens alone are about {low:,})." if max_tokens < low else
            f"enough even if every reply is max_tokens long ({high:,} at most)." if max_tokens >= high else
            f"the run may stop before the end: it needs between about {low:,} and {high:,} tokens."))
    return lines


def explain(est: DryRun) -> list[str]:
    """The lines under the table that say which numbers are exact and which are estimated."""
    if not est.rows:
        return ["the study plans no model calls (e.g. its answers are read from files)."]
    lines = []
    if est.waves <= 1:
        lines.append("waves: 1, exact (the study's whole plan).")
    elif not est.estimated:
        lines.append(f"waves: {est.waves}, all exact (the store answers every wave before the last).")
    else:
        exact = "wave 1" if est.exact_waves == 1 else f"waves 1-{est.exact_waves}"
        lines.append(f"waves: {est.waves}; {exact} exact, later waves estimated: planned from placeholder answers "
                     "(max_tokens long) where the store has none, so what the model says can change them.")
    where = est.store if est.store_exists else f"{est.store} (not created yet: nothing cached)"
    lines.append(f"cached: looked up in {where} with the run's own cache keys.")
    by = {"tokenizer": sorted({r.model for r in est.rows if r.tokens_counted_by == "tokenizer" and r.to_send}),
          "chars/4": sorted({r.model for r in est.rows if r.tokens_counted_by == "chars/4" and r.to_send})}
    parts = []
    if by["tokenizer"]:
        parts.append(f"counted with the model's tokenizer for {', '.join(by['tokenizer'])}")
    if by["chars/4"]:
        parts.append(f"estimated as characters / 4 for {', '.join(by['chars/4'])}")
    if parts:
        lines.append("prompt tokens: " + "; ".join(parts) + ".")
    lines.append("completion tokens: an upper bound (max_tokens per generation; scores and embeddings generate none).")
    unpriced = sorted({r.model for r in est.rows if r.cost is None and r.to_send})
    if unpriced:
        lines.append(f"cost: no price set for {', '.join(unpriced)}: add 'prices: {{MODEL: {{input: ..., output: ...}}}}' "
                     "(per million tokens) to the spec, or --prices FILE.")
    elif any(r.to_send for r in est.rows):
        lines.append("cost: from the price table, per million tokens, in its currency.")
    lines.extend(est.notes)
    return lines
