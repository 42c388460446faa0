"""All of outdial's SQL, by subject; nothing outside this package writes a query."""

from __future__ import annotations

from typing import Any, TypeAlias, cast

from sqlalchemy import Row, Table

from outdial.models import Base

# A result row of any width.
AnyRow: TypeAlias = Row[*tuple[Any, ...]]


def table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)
