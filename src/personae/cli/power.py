"""personae power"""

from __future__ import annotations

import typer

from ._common import handle_errors, out, table_from_rows


@handle_errors
def power(
    p0: float = typer.Option(0.7, help="Baseline accuracy."),
    delta: float = typer.Option(0.03, help="Accuracy change to detect (0.03 = 3 points)."),
    k: list[int] = typer.Option([1, 3, 5, 10, 25], "--k", help="Replicates per (item, condition); repeatable."),
    icc: float = typer.Option(0.5, help="Correlation of two replicates of one item (between-item share)."),
    item_corr: float = typer.Option(0.0, help="Correlation of an item's accuracy across the two conditions."),
    alpha: float = typer.Option(0.05, help="Significance level (two-sided)."),
    target: float = typer.Option(0.8, "--power", help="Power wanted."),
) -> None:
    """How many items (and replicates) to detect an accuracy change in a paired persona study.

    More replicates help only until the item-level spread dominates (the icc term).

    Example: personae power --p0 0.7 --delta 0.03 --k 5 --k 25
    """
    from ..errors import ConfigError  # noqa: PLC0415
    from ..stats import paired_items_needed  # noqa: PLC0415

    rows = []
    for kk in k:
        try:
            r = paired_items_needed(p0, delta, k=kk, icc=icc, item_corr=item_corr, alpha=alpha, power=target)
        except ValueError as exc:
            raise ConfigError(str(exc) + ".", fix="check the option values (see --help).") from None
        rows.append({"replicates K": kk, "items needed": r.n_items, "power": round(r.power, 3),
                     "sd of per-item difference": round(r.sd_diff, 4), "effect size d_z": round(r.effect_size, 3)})
    out.print(table_from_rows(rows, title=f"items needed for a {100 * delta:+.1f}-point change from "
                                          f"{p0:.2f} (alpha {alpha}, power {target})"))
