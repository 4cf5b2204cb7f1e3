"""The `personae` command. Thin: parse, build the spec, call the library."""

from __future__ import annotations

import os
import warnings

import typer

from .chat import chat
from .models import models
from .personas import personas
from .power import power
from .run import run
from .runs import export, runs
from .tour import tour
from .validate import validate

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Use LLM personas honestly: measure what a persona does, and use it where it works.")


def _version(value: bool) -> None:
    if value:
        from .. import __version__  # noqa: PLC0415

        typer.echo(f"personae {__version__}")
        raise typer.Exit()


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", envvar="PERSONAE_DEBUG",
                                     help="Show tracebacks for errors."),
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    if debug:
        os.environ["PERSONAE_DEBUG"] = "1"


app.command()(run)
app.command()(validate)
app.command()(chat)
app.command()(models)
app.command()(personas)
app.command()(tour)
app.command()(power)
app.command()(runs)
app.command()(export)


def main() -> None:
    # llama.cpp's quiet mode leaves /dev/null handles open until exit; the warning is noise to users
    warnings.filterwarnings("ignore", category=ResourceWarning)
    app(prog_name="personae")


if __name__ == "__main__":
    main()
