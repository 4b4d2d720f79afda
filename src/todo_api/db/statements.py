"""SQLAlchemy Core statements compiled for asyncpg, and the rows they return.

Services build statements with SQLAlchemy Core; the request's `Session` runs them on
an asyncpg connection. Compiling is the expensive part (a task SELECT with its tag and
occurrence subqueries takes longer to compile than to run), so statements a request
runs often are compiled once (`Statement`, at import or per shape in a cache) and
given their values as named parameters; anything else is compiled when it runs.

Columns come back as asyncpg decodes them: every type the schema uses maps to the
Python type the services expect (`jsonb` through the codec `Database` installs on each
connection). Parameters go through each type's bind processor, as SQLAlchemy would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

#: The dialect every statement is compiled for.
DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]

_Processor = Callable[[Any], Any]


#: A result row, by column name.
Row = Mapping[str, Any]


class Statement:
    """A Core statement compiled once: its SQL text and how to order its parameters.

    `Statement(stmt)` is for statements built with `bindparam(name)` placeholders (no
    expanding `IN` lists: use `= any_(bindparam(...))` with an array type); values
    written into the statement (`t.c.completed == false()`, `literal(1)`) are kept.
    """

    __slots__ = ("fixed", "names", "processors", "sql")

    def __init__(self, stmt: ClauseElement, *, render_values: bool = False) -> None:
        kwargs = {"render_postcompile": True} if render_values else {}
        compiled = stmt.compile(dialect=DIALECT, compile_kwargs=kwargs)
        assert isinstance(compiled, SQLCompiler), "only SQL statements are compiled here"
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        binds = compiled.binds
        if render_values:
            # Every value is in the statement; expanded `IN` lists have names of their own.
            self.fixed: dict[str, Any] = dict(compiled.construct_params())
        else:
            self.fixed = {
                name: bind.effective_value
                for name, bind in ((n, binds.get(n)) for n in self.names)
                if bind is not None and not bind.required
            }
        processors: list[tuple[int, _Processor]] = []
        for index, name in enumerate(self.names):
            bind = binds.get(name)
            if bind is None:
                continue
            processor = bind.type.dialect_impl(DIALECT).bind_processor(DIALECT)
            if processor is not None:
                processors.append((index, processor))
        self.processors = tuple(processors)

    def arguments(self, params: Mapping[str, Any] | None) -> list[Any]:
        """The positional arguments: `params` by name, else the statement's own values."""
        fixed = self.fixed
        if params:
            values = [params[n] if n in params else fixed[n] for n in self.names]
        else:
            values = [fixed[n] for n in self.names]
        for index, processor in self.processors:
            if values[index] is not None:
                values[index] = processor(values[index])
        return values


@lru_cache(maxsize=512)
def cached(build: Callable[..., ClauseElement], *shape: Any) -> Statement:
    """`Statement(build(*shape))`, compiled once per shape (a bounded cache).

    For statements whose structure depends on a few choices (a list's sort and which
    filters are present) and whose values are all parameters."""
    return Statement(build(*shape))


class Result:
    """The rows of one statement. The accessors mirror SQLAlchemy's `Result`."""

    __slots__ = ("records", "rows")

    def __init__(self, records: Sequence[Any]) -> None:
        #: The asyncpg Records, which also take positions (`scalar_one` and friends).
        self.records = records
        #: The rows as dicts: what Pydantic validates, and what services extend.
        self.rows: list[dict[str, Any]] = [dict(record) for record in records]

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def mappings(self) -> Result:
        """The same rows: each is addressable by column name already."""
        return self

    def all(self) -> list[Row]:
        return list(self.rows)

    def first(self) -> Row | None:
        return self.rows[0] if self.rows else None

    def one(self) -> Row:
        if len(self.rows) != 1:
            raise LookupError(f"expected one row, got {len(self.rows)}")
        return self.rows[0]

    def one_or_none(self) -> Row | None:
        if len(self.rows) > 1:
            raise LookupError(f"expected at most one row, got {len(self.rows)}")
        return self.rows[0] if self.rows else None

    def scalar_one(self) -> Any:
        self.one()
        return self.records[0][0]

    def scalar_one_or_none(self) -> Any:
        return None if self.one_or_none() is None else self.records[0][0]

    def scalar(self) -> Any:
        return self.records[0][0] if self.records else None

    def scalars(self) -> list[Any]:
        return [record[0] for record in self.records]
