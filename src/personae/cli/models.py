"""personae models"""

from __future__ import annotations

from ._common import handle_errors, out, table_from_rows


@handle_errors
def models() -> None:
    """List backends and whether each is available here.

    Example: personae models
    """
    from ..backends import provider_status  # noqa: PLC0415

    rows = [{"provider": s.provider, "available": "yes" if s.available else "no", "example id": s.example,
             "detail": s.detail} for s in provider_status()]
    out.print(table_from_rows(rows, title="backends"))
