"""PostgreSQL source: the database, schemas, tables, views, columns, primary and foreign keys from pg_catalog.

Four set-based catalog queries per crawl, whatever the number of tables; columns stream through a
server-side cursor so that progress is reported while a large catalog is read.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from services.connector.sources.base import (
    AssetDict,
    SourceError,
    SourceReport,
    container_asset,
    foreign_key,
    key_part,
    normalized_type,
    schema_asset,
    selected,
    table_asset,
)
from services.connector.sources.tls import pinned_tls_context
from services.core.imports import LineageEdge
from services.core.sources import CheckedAddresses
from services.core.sources.postgres import PostgresConfig, PostgresCredentials

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
RELKINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized_view", "f": "foreign_table"}

SCHEMAS_SQL = """
SELECT n.oid, n.nspname, d.description AS comment, has_schema_privilege(n.oid, 'USAGE') AS usable
FROM pg_namespace n
LEFT JOIN pg_description d ON d.objoid = n.oid AND d.classoid = 'pg_namespace'::regclass AND d.objsubid = 0
WHERE n.nspname <> ALL($1::text[]) AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
ORDER BY n.nspname
"""

RELATIONS_SQL = """
SELECT c.oid, c.relnamespace, c.relname, c.relkind::text AS relkind, d.description AS comment,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS definition,
       has_table_privilege(c.oid, 'SELECT') AS readable
FROM pg_class c
LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
WHERE c.relnamespace = ANY($1::oid[]) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
ORDER BY c.relnamespace, c.relname
"""

CONSTRAINTS_SQL = """
SELECT con.conrelid, con.conname, con.contype::text AS contype, rn.nspname AS ref_schema, rc.relname AS ref_table,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.i) AS columns,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(num, i)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.i) AS ref_columns
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
LEFT JOIN pg_class rc ON rc.oid = con.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.contype IN ('p', 'u', 'f') AND c.relnamespace = ANY($1::oid[])
ORDER BY con.conrelid, con.conname
"""

# The fingerprint of a column is computed by the source (md5 of every attribute we report): for 10,000s
# of columns that is much cheaper than serialising and hashing each one in Python.
COLUMNS_SQL = """
SELECT q.*, md5(row(q.data_type, q.nullable, q.comment, q.default_value, q.attnum, q.is_pk)::text) AS fingerprint
FROM (
SELECT a.attrelid, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod) AS data_type,
       NOT a.attnotnull AS nullable, d.description AS comment, pg_get_expr(ad.adbin, ad.adrelid) AS default_value,
       coalesce(a.attnum = ANY (pk.conkey), false) AS is_pk
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_description d ON d.objoid = a.attrelid AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_constraint pk ON pk.conrelid = a.attrelid AND pk.contype = 'p'
WHERE c.relnamespace = ANY($1::oid[]) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND a.attnum > 0 AND NOT a.attisdropped
) q
ORDER BY q.attrelid, q.attnum
"""


def tls_for(config: PostgresConfig) -> str | ssl.SSLContext:
    """asyncpg's `ssl` argument for a connection dialled to an IP address rather than to `config.host`."""
    if config.sslmode in ("disable", "prefer"):
        return config.sslmode  # no certificate check in these modes, so the dialled IP is all asyncpg needs
    # require / verify-*: our context (asyncpg then requires TLS) speaks to and checks `host`, not the IP.
    # PGSSLROOTCERT names the trusted CAs, as with libpq and asyncpg; else the system's trust store.
    return pinned_tls_context(
        config.host, verify_certificate=config.sslmode != "require", verify_hostname=config.sslmode == "verify-full",
        cafile=os.environ.get("PGSSLROOTCERT"),
    )  # fmt: skip


class PostgresSource:
    def __init__(
        self, config: PostgresConfig, credentials: PostgresCredentials, addresses: tuple[str, ...],
        batch_size: int = 1000,
    ) -> None:  # fmt: skip
        self.config = config
        self.report = SourceReport()
        self._password = credentials.password
        self._addresses = addresses
        self._batch_size = batch_size
        self._conn: asyncpg.Connection | None = None

    @classmethod
    def create(
        cls, config: PostgresConfig, credentials: PostgresCredentials, addresses: CheckedAddresses
    ) -> PostgresSource:
        return cls(config, credentials, addresses.of(config.host, config.port))

    async def _connect(self) -> asyncpg.Connection:
        if self._conn is None:
            c = self.config
            try:
                # The checked addresses, tried in order; never the name, which could resolve elsewhere by now.
                self._conn = await asyncpg.connect(
                    host=list(self._addresses), port=c.port, database=c.database, user=c.username,
                    password=self._password, ssl=tls_for(c), timeout=15,
                    server_settings={"application_name": "ingestion-connector"},
                )  # fmt: skip
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                dialled = "" if self._addresses == (c.host,) else f" ({', '.join(self._addresses)})"
                raise SourceError(
                    f"Cannot connect to PostgreSQL at {c.host}:{c.port}{dialled}/{c.database} as '{c.username}': "
                    f"{type(error).__name__}: {error}"
                ) from None
        return self._conn

    async def test_connection(self) -> None:
        """Connect and read the catalog (the schemas this configuration selects), as a crawl would."""
        conn = await self._connect()
        try:
            await conn.fetch(SCHEMAS_SQL, list(SYSTEM_SCHEMAS))
        except asyncpg.PostgresError as error:
            raise SourceError(f"Connected, but cannot read the catalog: {type(error).__name__}: {error}") from None

    def lineage(self) -> list[LineageEdge]:
        return []  # views' lineage is not read yet

    async def close(self) -> None:
        if self._conn is not None:
            # terminate(), not close(): after a cancelled query close() would wait on the server.
            self._conn.terminate()
            self._conn = None

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        conn = await self._connect()
        db = key_part(self.config.database)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            schemas = [
                s for s in await conn.fetch(SCHEMAS_SQL, list(SYSTEM_SCHEMAS))
                if selected(s["nspname"], self.config.include_schemas, self.config.exclude_schemas)
            ]  # fmt: skip
            if not schemas:
                self.report.warn("No schema matched includeSchemas/excludeSchemas.")
            user = self.config.username
            for s in schemas:
                if not s["usable"]:
                    self.report.warn(f"Schema {s['nspname']}: user '{user}' has no USAGE privilege on it, so its "
                                     f"objects are catalogued but their data cannot be read.")  # fmt: skip
            # The database is the level above schemas: a container at the root, part of every key below it.
            schema_assets = [schema_asset(db, s["nspname"], s["comment"]) for s in schemas]
            schema_keys = {s["oid"]: asset["key"] for s, asset in zip(schemas, schema_assets, strict=True)}
            yield [container_asset(self.config.database, "database"), *schema_assets]
            oids = list(schema_keys)
            relations = await conn.fetch(RELATIONS_SQL, oids)
            keys = _keys_by_relation(await conn.fetch(CONSTRAINTS_SQL, oids))
            names = {s["oid"]: s["nspname"] for s in schemas}
            rel_keys: dict[int, str] = {}
            batch: list[AssetDict] = []
            for r in relations:
                kind = RELKINDS[r["relkind"]]
                if not r["readable"]:
                    self.report.warn(f"{kind} {names[r['relnamespace']]}.{r['relname']}: user '{user}' has no SELECT "
                                     "privilege on it, so it is catalogued but its data cannot be read.")  # fmt: skip
                primary, unique, foreign = keys.get(r["oid"], ([], [], []))
                table = table_asset(
                    schema_keys[r["relnamespace"]], names[r["relnamespace"]], r["relname"], kind, comment=r["comment"],
                    primary_key=primary, unique_keys=unique, foreign_keys=foreign, definition=r["definition"],
                )  # fmt: skip
                rel_keys[r["oid"]] = table["key"]
                batch.append(table)
                if len(batch) >= self._batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
            batch = []
            async for c in conn.cursor(COLUMNS_SQL, oids, prefetch=self._batch_size):
                parent = rel_keys[c["attrelid"]]
                name = c["attname"]
                normalized = normalized_type(c["data_type"])
                batch.append({
                    "key": f"{parent}/{key_part(name)}",
                    "kind": "column",
                    "name": name,
                    "parent_key": parent,
                    # The source's digest covers what it reads; the normalized type is ours, so it is added here
                    # (a change of the normalization rules reaches the stored columns).
                    "fingerprint": f"{c['fingerprint']}:{normalized}",
                    "attributes": {
                        "dataType": c["data_type"],
                        "normalizedType": normalized,
                        "nullable": c["nullable"],
                        "ordinal": c["attnum"],
                        "comment": c["comment"],
                        "default": c["default_value"],
                        "primaryKey": c["is_pk"],
                    },
                })  # fmt: skip
                if len(batch) >= self._batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch


def _keys_by_relation(
    rows: list[asyncpg.Record],
) -> dict[int, tuple[list[str], list[list[str]], list[dict[str, Any]]]]:
    """Each relation's primary key, unique keys and foreign keys."""
    keys: dict[int, tuple[list[str], list[list[str]], list[dict[str, Any]]]] = {}
    for row in rows:
        primary, unique, foreign = keys.setdefault(row["conrelid"], ([], [], []))
        if row["contype"] == "p":
            primary.extend(row["columns"])
        elif row["contype"] == "u":
            unique.append(list(row["columns"]))
        else:
            foreign.append(foreign_key(row["conname"], row["columns"], row["ref_schema"], row["ref_table"],
                                       row["ref_columns"]))  # fmt: skip
    return keys
