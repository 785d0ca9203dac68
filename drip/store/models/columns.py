"""Column types every table shares (aware UTC datetimes, enums kept as plain text), the
short-hands for common columns, and the declarative `Base` all tables map onto."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, TypeVar

from sqlalchemy import JSON, DateTime, Integer, String, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


T = TypeVar("T", bound=enum.StrEnum)


class StrEnumType(TypeDecorator[T]):
    """A StrEnum kept as its plain value in a VARCHAR: the stored text and the DDL are those
    of the `String` column it replaces (no migration), and reading gives the enum back."""

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[T], length: int) -> None:
        super().__init__(length)
        self.enum_class = enum_class
        self._members = {member.value: member for member in enum_class}  # a lookup per row
        self._values = {member.value: str(member.value) for member in enum_class}

    def process_bind_param(self, value: T | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        known = self._values.get(value)
        return known if known is not None else self.enum_class(value).value  # raises

    def process_result_value(self, value: str | None, dialect: Dialect) -> T | None:
        return None if value is None else self._members[value]


intpk = Annotated[int, mapped_column(Integer, primary_key=True)]


utc = Annotated[datetime, mapped_column(UTCDateTime())]


utc_or_none = Annotated[datetime | None, mapped_column(UTCDateTime(), nullable=True)]


slug = Annotated[str, mapped_column(String(100))]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}
