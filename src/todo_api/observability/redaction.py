"""Keep request data out of logs that libraries write.

SQLAlchemy's engine logger (Alembic's engine), when someone turns it up to INFO or
DEBUG, prints every statement's parameters and every fetched row: task titles,
descriptions, user ids. Error messages quote parameters too (SQLAlchemy's statement
errors; asyncpg's "invalid input for query argument $1: '<value>'"), and an unexpected
one ends up in the error log with its traceback. All are neutralised here, whatever
the configured log level.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy.exc import StatementError

# The two message formats SQLAlchemy's engine uses for parameters and result rows.
_PARAMETERS = "[%s] %r"
_ROW = "Row %r"
_ENGINE_LOGGER = "sqlalchemy.engine.Engine"
#: asyncpg's refusal of a parameter value, which quotes the value.
_ARGUMENT_VALUE = re.compile(r"(invalid input for query argument \$\d+): .*? \(", re.DOTALL)


class SqlDataFilter(logging.Filter):
    """On SQLAlchemy's engine logger: statements pass, their parameters and rows do not."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop row records; replace parameter values with a placeholder."""
        if record.msg == _ROW:
            return False
        if record.msg == _PARAMETERS and isinstance(record.args, tuple) and record.args:
            record.msg = "[%s] [parameters hidden]"
            record.args = record.args[:1]
        return True


def install_log_redaction() -> None:
    """Attach `SqlDataFilter` to SQLAlchemy's engine logger (once per process).

    A filter on the logger itself runs before any handler, including handlers of parent
    loggers that records propagate to, so no configuration can bypass it.
    """
    logger = logging.getLogger(_ENGINE_LOGGER)
    if not any(isinstance(existing, SqlDataFilter) for existing in logger.filters):
        logger.addFilter(SqlDataFilter())


def hide_statement_parameters(error: BaseException) -> None:
    """Make every error in `error`'s chain render without statement parameters."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StatementError):
            current.hide_parameters = True
        elif current.args and isinstance(current.args[0], str):
            hidden = _ARGUMENT_VALUE.sub(r"\1: [value hidden] (", current.args[0])
            if hidden != current.args[0]:
                current.args = (hidden, *current.args[1:])
        current = current.__cause__ or current.__context__
