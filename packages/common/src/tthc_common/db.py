"""Database engine, transactions and migrations, the same on SQLite (dev, tests) and PostgreSQL.

Services keep their domain code synchronous; an async handler runs one unit of work in a worker
thread with `run_in_transaction(engine, fn)`, where `fn(session)` does everything that must commit
together (state, processed-event row, outbox rows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import event, literal_column, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url`: SQLite in WAL mode with a busy timeout, or a pooled PostgreSQL engine.

    `hide_parameters` keeps bound values (which may be an applicant's name) out of error messages,
    and so out of logs.
    """
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            hide_parameters=True,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url,
        echo=echo,
        hide_parameters=True,
        # A server that does not answer (a dropped packet, not a refused connection) fails in seconds.
        connect_args={"connect_timeout": 10},
        pool_size=5,
        max_overflow=10,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that `begin` below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then writes
        # can fail with SQLITE_BUSY at once (no busy wait) when another writer committed meanwhile.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commits when the block ends, rolls back if it raises."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def _transaction(engine: Engine, fn: Callable[[Session], T]) -> T:
    with session_scope(engine) as session:
        return fn(session)


async def run_in_transaction(engine: Engine, fn: Callable[[Session], T]) -> T:
    """Run `fn(session)` in one transaction in a worker thread, so the event loop keeps serving."""
    return await anyio.to_thread.run_sync(partial(_transaction, engine, fn))


def check_database(engine: Engine) -> None:
    """`SELECT 1`; raises when the database does not answer."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def run_migrations(engine_url: str, script_location: str | Path) -> None:
    """Upgrade the database to the newest revision of the service's own Alembic history.

    Called at service start, before the broker starts consuming. The service's `env.py` decides the
    version table (see `tthc_common.migrations`).
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    # configparser interpolates '%': a password such as 'p%40ss' must be escaped.
    config.set_main_option("sqlalchemy.url", engine_url.replace("%", "%%"))
    if is_sqlite(engine_url):
        make_engine(engine_url).dispose()  # creates the parent directory of the database file
    command.upgrade(config, "head")


def dialect_insert(session: Session, table: Any) -> Any:
    """The INSERT of the session's database (PostgreSQL or SQLite), which has ON CONFLICT clauses."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":  # RETURNING needs SQLite >= 3.35 (2021)
        return sqlite.insert(table)
    raise NotImplementedError(f"{dialect} is not supported (PostgreSQL or SQLite)")  # pragma: no cover


def insert_ignoring_conflict(session: Session, table: Any, values: dict[str, object]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING; returns the number of rows inserted (0 or 1).

    RETURNING rather than `rowcount`, which drivers do not report alike for this statement.
    ON CONFLICT rather than catching IntegrityError: on PostgreSQL a failed INSERT aborts the whole
    transaction, and the caller's state change lives in that transaction.
    """
    stmt = dialect_insert(session, table).values(**values).on_conflict_do_nothing()
    return len(session.execute(stmt.returning(literal_column("1"))).all())


def add_to_counters(session: Session, table: Any, deltas: Mapping[tuple[Any, ...], Mapping[str, int]], *,
                    keys: Sequence[str]) -> None:
    """`column += delta` on the counter rows named by their `keys` values (a missing row starts at 0), in
    the caller's transaction, with one upsert statement run for every row: `{(shard, "open"): {"dossiers":
    -1}, ...}`.

    Rows are written in sorted key order, so that concurrent transactions lock the counter rows in the
    same order and never deadlock on them. Rows whose deltas are all 0 are not written. The statement
    depends only on the columns, not on the rows: compiled once, whatever their number (a statement with
    the rows in its VALUES would be compiled again for each call).
    """
    changed = {key: values for key, values in deltas.items() if any(values.values())}
    if not changed:
        return
    value_columns = sorted({c for values in changed.values() for c in values})
    rows = [{**dict(zip(keys, key)), **{c: changed[key].get(c, 0) for c in value_columns}}
            for key in sorted(changed)]
    columns = table.__table__.c if hasattr(table, "__table__") else table.c
    stmt = dialect_insert(session, table)
    session.execute(stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: columns[c] + stmt.excluded[c] for c in value_columns}), rows)


# -- many rows while they are computed ---------------------------------------------------------------
@lru_cache(maxsize=256)
def values_rows_sql(columns: int, rows: int, casts: tuple[str, ...] = ()) -> str:
    """`(%s, %s), (%s, %s)` for `rows` rows of `columns` columns (psycopg placeholders); `casts` gives
    each column's `::type` suffix ('' for none), which a VALUES list in a FROM clause needs."""
    one = "(" + ", ".join("%s" + (f"::{casts[i]}" if casts and casts[i] else "") for i in range(columns)) + ")"
    return ", ".join([one] * rows)


class Pipeline:
    """Statements sent to PostgreSQL at once, without waiting for their results (psycopg's pipeline
    mode), so the server executes one while the caller computes the next; see `pipeline`."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def send(self, sql: str, params: list[Any]) -> None:
        self._cursor.execute(sql, params)


@contextmanager
def pipeline(session: Session) -> Iterator[Pipeline | None]:
    """A `Pipeline` on the session's connection, in its transaction; None when the database is not
    PostgreSQL (the caller then writes through SQLAlchemy).

    The results are awaited when the block ends; an error in any statement is raised there and the
    transaction rolls back as usual. Values reach psycopg as they are (str, int, aware datetime,
    None): no SQLAlchemy type processing, so `sql` must say what the columns need.
    """
    raw = session.connection().connection.driver_connection
    if session.get_bind().dialect.name != "postgresql" or not hasattr(raw, "pipeline"):
        yield None
        return
    with raw.pipeline(), raw.cursor() as cursor:
        yield Pipeline(cursor)
