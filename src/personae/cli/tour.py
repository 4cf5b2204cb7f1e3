"""personae tour --out DIR"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import typer
from rich.text import Text

from ._common import StoreOption, handle_errors, open_store, out


@handle_errors
def tour(
    out_dir: Path = typer.Option(Path("runs/tour"), "--out", "-o", help="Where to write the two run folders."),
    model: str = typer.Option(None, "--model", "-m", help="Model id (default: the embedded local/smollm2-135m)."),
    store: Path = StoreOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """A short tour on the embedded model, offline: two characters chat, then a persona x question
    grid with replicates; prints the tables and writes run folders with HTML reports.

    Example: personae tour --out runs/tour
    """
    import yaml  # noqa: PLC0415

    from ..api import run_study  # noqa: PLC0415
    from ..backends.pool import BackendPool  # noqa: PLC0415
    from ..spec import resolve_spec  # noqa: PLC0415
    from ..studies.dialogue import transcript  # noqa: PLC0415
    from .run import print_outcome  # noqa: PLC0415

    folder = resources.files("personae") / "data" / "tour"
    pool = BackendPool()  # one embedded model for both runs, loaded once
    with open_store(store) as st:
        for name in ("dialogue", "grid"):
            with resources.as_file(folder / f"{name}.yaml") as path:
                data = yaml.safe_load(path.read_text())
                if model:
                    data["model"] = model
                resolved = resolve_spec(data, path=path)
            out.rule(Text(resolved.name, style="bold"))
            outcome = run_study(resolved, out_dir / name, store=st, quiet=quiet, pool=pool)
            if name == "dialogue":
                for persona in resolved.personas:
                    out.print(Text.assemble("\n", (persona.name, "bold"), f" ({persona.description})"))
                    mine = [r for r in outcome.results if r.request.tags.persona == persona.id and r.ok]
                    for m in transcript(mine):
                        who = "user" if m.role == "user" else persona.name
                        out.print(f"  {who}> {m.content}", markup=False)
            print_outcome(outcome)
    import asyncio  # noqa: PLC0415

    asyncio.run(pool.aclose())
    out.print(f"\nOpen {out_dir / 'grid' / 'report.html'} in a browser for the report.", markup=False)
