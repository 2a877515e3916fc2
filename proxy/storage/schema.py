"""A database made by an earlier version, brought up to this one's tables at start: the columns and
indexes added since are made, and an index whose columns changed is rebuilt.

Each version only adds: a column the records may leave empty (or with a fixed default), an index. So the
upgrade is a few statements, run by whichever process starts first while the others wait (see
database.create_tables). What cannot be added to rows already there (a new column that must be filled
and has no default, a new key) stops the start with a message, rather than every record being refused
after it."""
import logging

from sqlalchemy import inspect, literal

log = logging.getLogger(__name__)


class SchemaError(RuntimeError):
    """The database cannot be brought up to this version's tables by adding to them."""


def _quote(connection, name):
    return connection.dialect.identifier_preparer.quote(name)


def _default_of(column):
    """The value existing rows take for a new NOT NULL column, if the model gives a fixed one."""
    default = column.server_default
    if default is not None and hasattr(default, "arg"):
        return default.arg if isinstance(default.arg, str) else None
    default = column.default
    if default is not None and default.is_scalar:
        return default.arg
    return None


def _add_column(connection, table, column):
    if column.primary_key or column.unique:
        raise SchemaError(f"table {table.name} lacks column {column.name}, a key this version cannot add to "
                          "rows already there; see README, Upgrading")
    clause = (f"ALTER TABLE {_quote(connection, table.name)} ADD COLUMN {_quote(connection, column.name)} "
              f"{column.type.compile(dialect=connection.dialect)}")
    if not column.nullable:
        value = _default_of(column)
        if value is None:
            raise SchemaError(f"table {table.name} lacks column {column.name}, which every row must fill and "
                              "which has no default; see README, Upgrading")
        rendered = literal(value).compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
        clause += f" NOT NULL DEFAULT {rendered}"
    for key in column.foreign_keys:
        clause += (f" REFERENCES {_quote(connection, key.column.table.name)} "
                   f"({_quote(connection, key.column.name)})")
        if key.ondelete:
            clause += f" ON DELETE {key.ondelete}"
    connection.exec_driver_sql(clause)
    return f"added column {table.name}.{column.name}"


def upgrade(connection, metadata):
    """Add what `metadata` has and the database's existing tables lack; returns what was done. Tables
    missing altogether are create_all's to make."""
    inspector = inspect(connection)
    done = []
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                done.append(_add_column(connection, table, column))
        indexes = {index["name"]: index for index in inspector.get_indexes(table.name)}
        for index in sorted(table.indexes, key=lambda index: index.name):
            found = indexes.get(index.name)
            wanted = [column.name for column in index.columns]
            if found is not None and found["column_names"] == wanted and bool(found["unique"]) == index.unique:
                continue
            if found is not None:
                index.drop(connection)
            index.create(connection)
            done.append(f"{'rebuilt' if found is not None else 'made'} index {index.name} on "
                        f"{table.name} ({', '.join(wanted)})")
    for line in done:
        log.warning("database upgraded for this version: %s", line)
    return done
