"""A database made before the project moved to Alembic, brought up to the baseline (0001) once, by adding.

Those versions kept no version table: each one only added to the last (a column the records may leave
empty or with a fixed default, an index, a table), and each start added what was missing. So a
database of any of them differs from the baseline by some subset of those additions, which is what
this finds and makes; the caller then stamps it 0001 and later migrations take it from there. What
cannot be added to rows already there (a column every row must fill with no default, a new key) is
not such a database: it stops the start with a message, rather than every record being refused after."""
from sqlalchemy import inspect, literal

from . import SchemaError


def _quote(connection, name):
    return connection.dialect.identifier_preparer.quote(name)


def _default_of(column):
    """The value existing rows take for a new NOT NULL column, if the table gives a fixed one."""
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
                          "rows already there; see README, The database's schema, and upgrading")
    clause = (f"ALTER TABLE {_quote(connection, table.name)} ADD COLUMN {_quote(connection, column.name)} "
              f"{column.type.compile(dialect=connection.dialect)}")
    if not column.nullable:
        value = _default_of(column)
        if value is None:
            raise SchemaError(f"table {table.name} lacks column {column.name}, which every row must fill and "
                              "which has no default; see README, The database's schema, and upgrading")
        rendered = literal(value).compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
        clause += f" NOT NULL DEFAULT {rendered}"
    for key in column.foreign_keys:
        clause += (f" REFERENCES {_quote(connection, key.column.table.name)} "
                   f"({_quote(connection, key.column.name)})")
        if key.ondelete:
            clause += f" ON DELETE {key.ondelete}"
    connection.exec_driver_sql(clause)
    return f"added column {table.name}.{column.name}"


def _complete(connection, inspector, table):
    """The columns and indexes `table` has and the database's table of that name lacks, made."""
    done = []
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
        if found is not None:  # an earlier version's index of that name, on fewer columns
            index.drop(connection)
        index.create(connection)
        done.append(f"{'rebuilt' if found is not None else 'made'} index {index.name} on "
                    f"{table.name} ({', '.join(wanted)})")
    return done


def bring_to(connection, metadata):
    """Make what `metadata` has and the database lacks: tables, columns, indexes; returns what was done."""
    inspector = inspect(connection)
    done = []
    for table in metadata.sorted_tables:
        if inspector.has_table(table.name):
            done += _complete(connection, inspector, table)
        else:
            table.create(connection)
            done.append(f"made table {table.name}")
    return done
