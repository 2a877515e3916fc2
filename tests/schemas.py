"""Databases' schemas read back for comparison, and databases as versions before Alembic left them."""
import os

from sqlalchemy import create_engine, inspect

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION_TABLE = "alembic_version"


def schema_of(url):
    """Every table but Alembic's, as the database reports it: columns, keys, indexes; on SQLite also the
    statements it keeps, so that two schemas compare equal only when made by the same DDL."""
    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        found = {}
        for table in sorted(set(inspector.get_table_names()) - {VERSION_TABLE}):
            found[table] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default"))
                            for c in inspector.get_columns(table)],
                "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
                "foreign_keys": sorted((tuple(k["constrained_columns"]), k["referred_table"],
                                        tuple(k["referred_columns"]), k["options"].get("ondelete"))
                                       for k in inspector.get_foreign_keys(table)),
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in inspector.get_indexes(table)),
                "unique": sorted((u["name"] or "", tuple(u["column_names"]))
                                 for u in inspector.get_unique_constraints(table)),
            }
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:
                found["sqlite_master"] = sorted(
                    (kind, name, table, " ".join((sql or "").split()))  # the statement, however it was laid out
                    for kind, name, table, sql in connection.exec_driver_sql(
                        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name != ? "
                        "AND tbl_name NOT LIKE 'sqlite%'", (VERSION_TABLE,)))  # not ANALYZE's own table
        return found
    finally:
        engine.dispose()


def run_sql(url, statements):
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def before_alembic(url):
    """The tables exactly as the last version before Alembic made them (its create_all's DDL, kept in a
    file per database), with no version table."""
    dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
    with open(os.path.join(HERE, f"schema_before_alembic.{dialect}.sql")) as handle:
        script = "".join(line for line in handle if not line.startswith("--"))
    run_sql(url, [statement for statement in script.split(";") if statement.strip()])


def version_of(url):
    engine = create_engine(url)
    try:
        if not inspect(engine).has_table(VERSION_TABLE):
            return None
        with engine.connect() as connection:
            return connection.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar()
    finally:
        engine.dispose()


def as_before_migrations(url):
    """Make a database at HEAD look made before migrations: no version table, none of the later tables,
    none of the columns later migrations added to the baseline's tables."""
    from proxy.storage.migrations import baseline
    inspector = inspect(create_engine(url))
    later = set(inspector.get_table_names()) - set(baseline.metadata.tables)
    added = [(table.name, column["name"]) for table in baseline.metadata.sorted_tables
             for column in inspector.get_columns(table.name) if column["name"] not in table.c]
    run_sql(url, [f"DROP TABLE {table}" for table in sorted(later)]
            + [f"ALTER TABLE {table} DROP COLUMN {column}" for table, column in added])
