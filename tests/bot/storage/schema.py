"""A database's schema as plain data, read from the database itself, and the diff of two of them.

Both backends are read generically (every table, column, primary key and index the migrations made),
so a migration added to one backend only shows up without this file knowing about it. Types are
compared by family (``integer``, ``text``, ``real``, ``blob``, ``timestamp``, ``boolean``): SQLite's
``INTEGER`` and PostgreSQL's ``bigint`` are the same column. Indexes are compared by name, columns,
uniqueness and whether they are partial; the indexes a backend makes by itself for a primary key or a
``UNIQUE`` constraint are left out (SQLite's ``sqlite_autoindex_*``, PostgreSQL's ``*_pkey``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_FAMILIES = (  # (substring of the declared type, family), first match wins; SQLite's affinity rules first
    ("int", "integer"),
    ("serial", "integer"),
    ("bool", "boolean"),
    ("timestamp", "timestamp"),
    ("date", "timestamp"),
    ("char", "text"),
    ("text", "text"),
    ("clob", "text"),
    ("json", "text"),
    ("real", "real"),
    ("floa", "real"),
    ("doub", "real"),
    ("numeric", "real"),
    ("decimal", "real"),
    ("blob", "blob"),
    ("bytea", "blob"),
)


def family(declared: str) -> str:
    """The type family of a declared column type (an unknown type is its own family, so it shows)."""
    lowered = declared.strip().lower()
    for needle, name in _FAMILIES:
        if needle in lowered:
            return name
    return lowered or "untyped"


@dataclass(frozen=True)
class Column:
    """A column: its type family and whether it may be NULL."""

    family: str
    not_null: bool


@dataclass(frozen=True)
class Index:
    """An index made by a migration: its table, its key columns (or expressions), unique, partial."""

    table: str
    columns: tuple[str, ...]
    unique: bool = False
    partial: bool = False


@dataclass
class Table:
    """A table's columns (by name), its primary key (in key order)."""

    columns: dict[str, Column] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()


@dataclass
class Schema:
    """Tables and indexes (by name)."""

    tables: dict[str, Table] = field(default_factory=dict)
    indexes: dict[str, Index] = field(default_factory=dict)


# -- reading a live database -----------------------------------------------------------------------


async def read_sqlite(db: Any) -> Schema:
    """The schema of an open SQLite :class:`~bot.storage.database.Database`."""
    schema = Schema()
    names = await db.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    for (name,) in [tuple(row) for row in names]:
        info = [tuple(row) for row in await db.fetch_all(f'PRAGMA table_info("{name}")')]
        key = tuple(col[1] for col in sorted((c for c in info if c[5]), key=lambda c: c[5]))
        columns = {col[1]: Column(family(col[2]), bool(col[3]) or col[1] in key) for col in info}
        schema.tables[name] = Table(columns, key)
        listed = [tuple(row) for row in await db.fetch_all(f'PRAGMA index_list("{name}")')]
        for _seq, index, unique, origin, partial in listed:
            if origin != "c":  # made for a PRIMARY KEY or UNIQUE constraint, not by a CREATE INDEX
                continue
            keys = [tuple(r) for r in await db.fetch_all(f'PRAGMA index_xinfo("{index}")')]
            cols = tuple(k[2] if k[2] is not None else "<expression>" for k in keys if k[5])
            schema.indexes[index] = Index(name, cols, bool(unique), bool(partial))
    return schema


_PG_COLUMNS = """
SELECT c.table_name, c.column_name, c.data_type, c.is_nullable
FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
ORDER BY c.table_name, c.ordinal_position
"""

_PG_KEYS = """
SELECT tc.table_name, k.column_name
FROM information_schema.table_constraints tc
JOIN information_schema.key_column_usage k
  ON k.constraint_schema = tc.constraint_schema AND k.constraint_name = tc.constraint_name
WHERE tc.table_schema = current_schema() AND tc.constraint_type = 'PRIMARY KEY'
ORDER BY tc.table_name, k.ordinal_position
"""

_PG_INDEXES = """
SELECT t.relname AS table_name, ix.relname AS index_name, i.indisunique AS is_unique,
       i.indpred IS NOT NULL AS is_partial,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) AS k
             ORDER BY k) AS columns
FROM pg_index i
JOIN pg_class ix ON ix.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = current_schema()
  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid)
"""


async def read_postgres(db: Any) -> Schema:
    """The schema of an open PostgreSQL :class:`~bot.storage.database.Database` (its current schema)."""
    schema = Schema()
    for table, column, data_type, nullable in [tuple(r) for r in await db.fetch_all(_PG_COLUMNS)]:
        schema.tables.setdefault(table, Table()).columns[column] = Column(family(data_type), nullable == "NO")
    keys: dict[str, list[str]] = {}
    for table, column in [tuple(r) for r in await db.fetch_all(_PG_KEYS)]:
        keys.setdefault(table, []).append(column)
    for table, key in keys.items():
        schema.tables[table].primary_key = tuple(key)
    for table, index, unique, partial, columns in [tuple(r) for r in await db.fetch_all(_PG_INDEXES)]:
        if table in schema.tables:
            cols = tuple(_pg_column(c) for c in columns)
            schema.indexes[index] = Index(table, cols, bool(unique), bool(partial))
    return schema


def _pg_column(definition: str) -> str:
    """A key column as SQLite names it: the column's name (unquoted), or ``<expression>``."""
    if len(definition) > 1 and definition[0] == definition[-1] == '"':
        return definition[1:-1].replace('""', '"')
    return definition if definition.isidentifier() else "<expression>"


# -- the diff --------------------------------------------------------------------------------------


def diff(sqlite: Schema, postgres: Schema) -> dict[str, str]:
    """Every difference, keyed (``table:T``, ``column:T.C``, ``type:T.C``, ``null:T.C``, ``key:T``,
    ``index:I``) so an allow-list can name it; the value says what differs."""
    found: dict[str, str] = {}
    for name in sorted(sqlite.tables.keys() | postgres.tables.keys()):
        left, right = sqlite.tables.get(name), postgres.tables.get(name)
        if left is None or right is None:
            found[f"table:{name}"] = f"only in {'postgresql' if left is None else 'sqlite'}"
            continue
        found |= _table_diff(name, left, right)
    for name in sorted(sqlite.indexes.keys() | postgres.indexes.keys()):
        left_index, right_index = sqlite.indexes.get(name), postgres.indexes.get(name)
        if left_index != right_index:
            found[f"index:{name}"] = f"sqlite {left_index} vs postgresql {right_index}"
    return found


def _table_diff(name: str, left: Table, right: Table) -> dict[str, str]:
    found: dict[str, str] = {}
    for column in sorted(left.columns.keys() | right.columns.keys()):
        a, b = left.columns.get(column), right.columns.get(column)
        where = f"{name}.{column}"
        if a is None or b is None:
            found[f"column:{where}"] = f"only in {'postgresql' if a is None else 'sqlite'}"
            continue
        if a.family != b.family:
            found[f"type:{where}"] = f"{a.family} in sqlite, {b.family} in postgresql"
        if a.not_null != b.not_null:
            found[f"null:{where}"] = f"NOT NULL {a.not_null} in sqlite, {b.not_null} in postgresql"
    if left.primary_key != right.primary_key:
        found[f"key:{name}"] = f"{left.primary_key} in sqlite, {right.primary_key} in postgresql"
    return found
