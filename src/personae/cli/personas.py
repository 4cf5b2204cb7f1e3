"""personae personas [ID]"""

from __future__ import annotations

import typer

from ._common import handle_errors, out, table_from_rows


@handle_errors
def personas(
    persona_id: str = typer.Argument(None, help="Show one persona and its rendered prompt."),
    template: str = typer.Option("you-are", "--template", "-t", help="Template used to render it."),
) -> None:
    """List the built-in persona library, or show one persona rendered as a system prompt.

    Example: personae personas pirate-captain --template third-person
    """
    from ..persona import builtin_persona, builtin_personas, render_persona  # noqa: PLC0415

    if persona_id:
        p = builtin_persona(persona_id)
        out.print(p.model_dump_json(indent=2, exclude_defaults=True), markup=False)
        out.print(f"\n[bold]{template}:[/bold]")
        out.print(render_persona(p, template), markup=False)
        return
    rows = [{"id": f"builtin:{p.id}", "name": p.name, "description": p.description,
             "domain": p.attributes.expertise_domain, "knowledge": p.attributes.knowledge_level}
            for p in builtin_personas().values()]
    out.print(table_from_rows(rows, title="built-in personas"))
