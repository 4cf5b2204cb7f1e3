"""Prices, and what a run's requests cost in tokens and money, per model and role.

A price table maps model ids to input and output prices per million tokens. It comes from the
spec (`prices:`) or a file (`--prices FILE`, a YAML or JSON mapping under `prices:`); entries of
the file win. personae ships no prices for real providers: they change, and a wrong built-in
price is worse than "no price set". The unit is whatever currency the table is written in.

    prices:
      openai/gpt-4o-mini: {input: 0.15, output: 0.60}
      local/smollm2-135m: {input: 0, output: 0}

`usage_rows(results, prices)` is the table run.json keeps under `usage` and the report shows:
one row per (model, role) with the tokens the backends reported and their cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._loading import LineMap, line_for, suggest
from .errors import ConfigError

__all__ = ["Price", "PriceFile", "check_price_models", "cost_of", "load_prices", "merged_prices", "role_label",
           "Usage", "usage_rows", "with_price_file"]

STUDIED = "(studied)"
"""The role label of the model under study in usage tables."""


class Price(BaseModel):
    """What one model's tokens cost, per million tokens, in the table's currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0)
    """Price of one million prompt (input) tokens."""
    output: float = Field(ge=0)
    """Price of one million completion (output) tokens."""


class PriceFile(BaseModel):
    """A `--prices FILE`: `prices: {MODEL: {input: ..., output: ...}}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prices: dict[str, Price]
    """Model id -> its price per million tokens."""


def cost_of(price: Price | None, prompt_tokens: float, completion_tokens: float) -> float | None:
    """The cost of these tokens at this price (None: no price set)."""
    if price is None:
        return None
    return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000


def check_price_models(prices: Mapping[str, Any], *, file: str | None, lines: LineMap | None = None,
                       used: Iterable[str] | None = None, known: Iterable[str] = (),
                       prefix: tuple[Any, ...] = ("prices",)) -> None:
    """Every key is a model id (provider/model); with `used` (the spec's own table), a key that the run
    does not call but that is close to one it does is a misspelt id: an error, not a price that never applies
    (`known`: other models the key may name, e.g. the spec's own that --model replaced)."""
    from .backends import parse_model_id  # noqa: PLC0415

    used = sorted(set(used)) if used is not None else None
    for model in prices:
        where = dict(file=file, line=line_for(lines or {}, (*prefix, model)), field=".".join(map(str, (*prefix, model))))
        try:
            parse_model_id(model)
        except ConfigError as exc:
            raise ConfigError(f"a price is keyed by a model id: {exc.detail}", fix=exc.fix, **where) from None
        hint = suggest(model, used) if used is not None and model not in used and model not in known else ""
        if hint:  # unused and close to a model that is used: a typo (an unused price alone may be for -m)
            raise ConfigError(f"a price for '{model}', which this run does not call.{hint}",
                              fix=f"key prices by the exact ids of the run's models and roles ({', '.join(used or ())}).",
                              **where)


def load_prices(path: str | Path) -> dict[str, Price]:
    """Read a `--prices FILE` (YAML or JSON), or raise a one-line ConfigError."""
    from ._loading import read_documents, validation_to_config_error  # noqa: PLC0415

    path = Path(path)
    docs = read_documents(path)
    if len(docs) != 1:
        raise ConfigError("a prices file holds one mapping.", file=str(path),
                          fix="write one 'prices:' mapping of model ids to {input: ..., output: ...}.")
    data, lines = docs[0]
    if isinstance(data, Mapping) and "prices" not in data and any("/" in str(k) for k in data):
        raise ConfigError("holds model prices but not under 'prices:'.", file=str(path), line=1,
                          fix="put 'prices:' on the first line and indent the models under it.")
    if not isinstance(data, Mapping) or "prices" not in data:
        raise ConfigError("a prices file must hold a 'prices:' mapping.", file=str(path), line=1,
                          fix="write 'prices:' and under it one 'MODEL: {input: PRICE, output: PRICE}' line per "
                          "model (prices per million tokens), e.g. 'openai/gpt-4o-mini: {input: 0.15, output: 0.6}'.")
    try:
        table = PriceFile.model_validate(data).prices
    except ValidationError as exc:
        raise validation_to_config_error(exc, PriceFile, file=str(path), lines=lines) from None
    check_price_models(table, file=str(path), lines=lines)
    return table


def merged_prices(spec_prices: Mapping[str, Price], file: str | Path | None) -> dict[str, Price]:
    """The spec's prices, with a --prices FILE's entries on top."""
    return {**spec_prices, **(load_prices(file) if file is not None else {})}


def role_label(role: str | None) -> str:
    return role or STUDIED


def usage_rows(results: Iterable[Any], prices: Mapping[str, Price]) -> list[dict[str, Any]]:
    """Tokens and cost per (model, role) of a run's results, from the token counts the backends
    reported. `computed_*` are the requests this run sent (what it spent); `results_*` all of its
    results, cached ones included (what the results cost wherever they were computed). Scores and
    embeddings carry no token counts, so they are counted as requests only."""
    usage = Usage()
    for r in results:
        usage.add(r)
    return usage.rows(prices)


class Usage:
    """`usage_rows` one result at a time (a run that does not hold its results counts as they come)."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, r: Any) -> None:
        model, role = r.request.model, role_label(r.request.tags.role)
        row = self._rows.get((model, role))
        if row is None:
            row = self._rows[(model, role)] = {
                "model": model, "role": role, "requests": 0, "cached": 0, "errors": 0, "without_token_counts": 0,
                "computed_prompt_tokens": 0, "computed_completion_tokens": 0,
                "results_prompt_tokens": 0, "results_completion_tokens": 0}
        row["requests"] += 1
        row["cached"] += bool(r.cached)
        row["errors"] += not r.ok
        gen = r.generation
        if gen is None:
            row["without_token_counts"] += r.ok
            return
        row["results_prompt_tokens"] += gen.prompt_tokens
        row["results_completion_tokens"] += gen.completion_tokens
        if not r.cached:
            row["computed_prompt_tokens"] += gen.prompt_tokens
            row["computed_completion_tokens"] += gen.completion_tokens

    def rows(self, prices: Mapping[str, Price]) -> list[dict[str, Any]]:
        out = []
        for (model, _), counted in sorted(self._rows.items()):
            row = dict(counted)
            price = prices.get(model)
            row["computed_cost"] = cost_of(price, row["computed_prompt_tokens"], row["computed_completion_tokens"])
            row["results_cost"] = cost_of(price, row["results_prompt_tokens"], row["results_completion_tokens"])
            row["price"] = price.model_dump() if price is not None else None
            out.append(row)
        return out


def with_price_file(resolved: Any, file: str | Path | None) -> Any:
    """The resolved spec with a --prices FILE's entries added to its `prices:` (run.json records the
    prices a run used with its spec)."""
    if file is None:
        return resolved
    import dataclasses  # noqa: PLC0415

    spec = resolved.spec.model_copy(update={"prices": merged_prices(resolved.spec.prices, file)})
    return dataclasses.replace(resolved, spec=spec)
