"""personae validate SPEC..."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import handle_errors, out


@handle_errors
def validate(specs: list[Path] = typer.Argument(..., help="Spec files to check.")) -> None:
    """Check specs and their personas without calling a model.

    Example: personae validate examples/grid.yaml
    """
    from ..spec import load_spec  # noqa: PLC0415
    from ..studies import get_study  # noqa: PLC0415

    for path in specs:
        resolved = load_spec(path)
        study = get_study(resolved.spec.study)(resolved)
        first = study.plan([])
        out.print(f"ok: {path}: study '{resolved.spec.study}', {len(resolved.spec.model)} model(s), "
                  f"{len(getattr(study, 'panel', None) or resolved.personas)} persona(s)"
                  f"{'' if resolved.personas else ' (the study default)'}, {len(first)} requests in the first wave", markup=False)
        for decl in type(study).roles_used(resolved.options):
            bound = resolved.roles.get(decl.name)
            who = bound.model if bound else f"the model under study ({', '.join(resolved.spec.model)}; weak)"
            out.print(f"  role {decl.name}: {who} - {decl.purpose}", markup=False)
        for line in study.describe():
            out.print(f"  {line}", markup=False)
