"""Query results as pandas frames, fast enough for 10⁶ rows.

QueryBuilder converts every projected value in Python (about 5 µs a value, ~17 µs for a dict): 10⁶ result rows of
twenty columns take minutes that way. On PostgreSQL the same query (QueryBuilder builds it: ``as_sql``) is streamed
with ``COPY ... TO STDOUT`` into pandas' C parser instead; JSON attribute values arrive as JSON text and are decoded
column by column. Elsewhere (SQLite) the plain ``iterall`` is used: same frame, same dtypes.

Below aiida-core's public API here: the storage backend's session (its raw psycopg connection) and ``as_sql``, which
aiida documents for debugging; read-only. ``tests/analysis/test_frames.py`` compares the frame with ``iterall`` on
every storage the tests run on, so an aiida-core or psycopg upgrade that changes either fails there.
"""

from __future__ import annotations

import io
import json
from collections.abc import Collection

import numpy as np
import pandas as pd
from aiida import orm
from aiida.manage import get_manager


def query_frame(
    query: orm.QueryBuilder, columns: list[str], attributes: Collection[str] = (), times: Collection[str] = ()
) -> pd.DataFrame:
    """The rows of ``query`` with one column per projection, named ``columns`` in the order ``iterall`` gives them
    (the vertices' projections in path order, then the edges' in path order).

    ``attributes`` names the columns projected from JSON attributes (``attributes.<key>``), ``times`` the datetime
    columns. The frame is what ``pd.DataFrame(list(query.iterall()), columns=columns)`` gives, on any backend, as
    long as the other projections are ids, times and link labels (on PostgreSQL a text that reads as a number or
    as true/false would be parsed as one).
    """
    storage = get_manager().get_profile_storage()
    if get_manager().get_profile().storage_backend == 'core.psql_dos':  # (core.sqlite_dos subclasses its class)
        frame = _copied(query, columns, attributes, storage)
    else:
        frame = pd.DataFrame(list(query.iterall()), columns=columns)
    for column in times:
        frame[column] = pd.to_datetime(frame[column], utc=True, format='ISO8601')
    return frame


def _copied(query: orm.QueryBuilder, columns: list[str], attributes: Collection[str], storage) -> pd.DataFrame:
    buffer = io.BytesIO()
    # Literal SQL: COPY takes no parameters; ``%%`` in LIKE patterns (escaped for the DB-API) matches as ``%``.
    statement = f'COPY ({query.as_sql(inline=True).strip()}) TO STDOUT (FORMAT csv)'
    connection = storage.get_session().connection().connection.driver_connection
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        while chunk := copy.read():
            buffer.write(chunk)
    if not buffer.tell():
        return pd.DataFrame([], columns=columns)
    buffer.seek(0)
    # Attributes are JSON text: 'null' or an absent key (SQL NULL, an empty field) is missing; the other columns
    # (ids, link labels, times) are never empty.
    raw = pd.read_csv(
        buffer, header=None, names=columns, keep_default_na=False, na_values={c: ['', 'null'] for c in attributes},
        true_values=['true'], false_values=['false'],
    )  # fmt: skip
    return pd.DataFrame({column: _values(raw[column], column in attributes) for column in columns})


def _values(column: pd.Series, is_json: bool) -> np.ndarray | list:
    """A parsed column as ``iterall`` would give it: numbers as they are, JSON text decoded (strings without escapes
    by slicing off their quotes), missing as None."""
    if column.isna().all():
        return [None] * len(column)
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.to_numpy()
    values = column.astype(object).where(column.notna(), None).tolist()
    if not is_json:
        return values
    return [
        value[1:-1] if isinstance(value, str) and value[:1] == '"' and '\\' not in value
        else json.loads(value) if isinstance(value, str) else value
        for value in values
    ]  # fmt: skip
