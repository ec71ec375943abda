"""Data objects of a connection: reading them with their effective settings, changing settings, crawling from
and deleting any level. Every change is recorded as a task (a run of the log)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.core.connections import ActiveSync, ConnectionService
from services.core.errors import Conflict, InvalidInput, NotFound
from services.core.ingestion import (
    Runtime,
    SyncRequest,
    TaskRecord,
    editable_integration,
    record_task,
    requester,
    visible_integration,
)
from services.core.model import Integration, Principal
from services.core.objects import (
    MAX_DEPTH,
    NONE,
    NORMALIZED_TYPES,
    ROOT,
    TABLE_LEVEL,
    EffectiveSettings,
    SettingName,
    SettingsChange,
    data_source_id,
    effective,
    effective_of,
    key_of,
    lineage,
    names_of,
    object_id,
    parent_of,
    remote_id,
)
from services.core.runs import RunState
from services.core.store import integrations as integration_store
from services.core.store import objects as store
from services.core.store import run_reads
from services.core.store.objects import ObjectFilter, ObjectRow

Keyset = tuple[str, uuid.UUID]  # (name, id): the order of every object listing


@dataclass(frozen=True)
class DataObject:
    connection: Integration
    key: str  # '' for the connection itself
    kind: str  # connection | database | schema | table | view | materialized_view | external_table | foreign_table
    name: str
    id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    last_synced_at: datetime | None
    settings: EffectiveSettings
    overrides: list[SettingName]  # set on this object itself
    overridden_below: set[SettingName]  # set on some descendant

    @property
    def names(self) -> list[str]:
        """The object's names below the connection."""
        return names_of(self.key)

    @property
    def path(self) -> list[str]:
        return [self.connection.external_id, *self.names]

    @property
    def normalized_type(self) -> str:
        return NORMALIZED_TYPES.get(self.kind, "CONNECTION")

    @property
    def remote_id(self) -> str:
        return remote_id(self.names) if self.key else self.connection.external_id

    @property
    def active(self) -> bool:
        """Active by its settings, in a connection that is not deactivated."""
        return self.settings.is_active and self.connection.enabled

    @property
    def data_source_id(self) -> int | None:
        return data_source_id(self.id) if self.kind in TABLE_LEVEL and self.active else None

    @property
    def keyset(self) -> Keyset:
        return (self.name, self.id)


@dataclass(frozen=True)
class Page:
    objects: list[DataObject]
    next_after: Keyset | None


def _root_row(connection: Integration) -> ObjectRow:
    return ObjectRow(ROOT, "connection", connection.external_id, object_id(connection.id, ROOT),
                     connection.created_at, connection.updated_at)  # fmt: skip


def object_key_of(path: Sequence[str]) -> str:
    """The object key of a path below the connection (names as given, unescaped); too deep is 404."""
    if len(path) > MAX_DEPTH or any(name == "" for name in path):
        raise NotFound("No data object has this path: " + "/".join(path))
    return key_of(path)


class ObjectService:
    def __init__(self, rt: Runtime, connections: ConnectionService) -> None:
        self._rt = rt
        self._connections = connections

    # ---- reads ----------------------------------------------------------------------------

    async def get(self, principal: Principal, key: str, object_key: str) -> DataObject:
        async with self._rt.pool.acquire() as conn:
            connection = await visible_integration(conn, principal, key)
            return await self._one(conn, connection, object_key)

    async def get_by_id(self, principal: Principal, key: str, oid: uuid.UUID) -> DataObject:
        async with self._rt.pool.acquire() as conn:
            connection = await visible_integration(conn, principal, key)
            row = await self._row_by_id(conn, connection, oid)
            return (await self._build(conn, connection, [row]))[0]

    async def children(self, principal: Principal, key: str, oid: uuid.UUID, after: Keyset | None, limit: int) -> Page:
        async with self._rt.pool.acquire() as conn:
            connection = await visible_integration(conn, principal, key)
            parent = await self._row_by_id(conn, connection, oid)
            rows = await store.children_after(conn, connection.id, parent.key, after, limit + 1)
            return await self._page(conn, connection, rows, limit)

    async def search(
        self, principal: Principal, key: str, where: ObjectFilter, after: Keyset | None, limit: int
    ) -> Page:
        async with self._rt.pool.acquire() as conn:
            connection = await visible_integration(conn, principal, key)
            root = _root_row(connection)
            rows = await store.search_after(conn, connection.id, root, connection.external_id, where, after, limit + 1)
            return await self._page(conn, connection, rows, limit)

    async def search_children(
        self, principal: Principal, key: str, object_key: str, text: str | None, sort: str, order: str, offset: int,
        limit: int,
    ) -> tuple[int, list[DataObject]]:  # fmt: skip
        """(total, page) of an object's direct children; a table-level object has none."""
        async with self._rt.pool.acquire() as conn:
            connection = await visible_integration(conn, principal, key)
            parent = await self._one(conn, connection, object_key)
            if parent.kind in TABLE_LEVEL:
                return 0, []
            total, rows = await store.search_children(conn, connection.id, object_key, text, sort, order, offset, limit)
            return total, await self._build(conn, connection, rows)

    async def roots(
        self, principal: Principal, sources: Sequence[str], text: str | None, sort: str, order: str, offset: int,
        limit: int,
    ) -> tuple[int, list[DataObject]]:  # fmt: skip
        """(total, page) of the connections (of `sources`) visible to `principal` as root data objects: a fixed number
        of queries."""
        async with self._rt.pool.acquire() as conn:
            total, connections = await integration_store.search_visible(
                conn, principal, sources, store.like_pattern(text), sort, order, offset, limit
            )
            own, below, synced = await store.roots_settings(conn, [c.id for c in connections])
        objects = []
        for connection in connections:
            row = _root_row(connection)
            settings = own.get(connection.id, NONE)
            objects.append(DataObject(
                connection=connection, key=ROOT, kind=row.kind, name=row.name, id=row.object_id,
                created_at=connection.created_at, updated_at=connection.updated_at,
                last_synced_at=_last_listed(ROOT, effective([settings]).is_active, {ROOT: synced[connection.id]}
                                            if connection.id in synced else {}),
                settings=effective([settings]), overrides=[],
                overridden_below=below.get(connection.id, set()),
            ))  # fmt: skip
        return total, objects

    async def _one(self, conn: asyncpg.Connection, connection: Integration, object_key: str) -> DataObject:
        row = _root_row(connection) if object_key == ROOT else await store.get_by_key(conn, connection.id, object_key)
        if row is None:
            path = "/".join([connection.external_id, *names_of(object_key)])
            raise NotFound(f"No data object has the path '{path}'.")
        return (await self._build(conn, connection, [row]))[0]

    async def _row_by_id(self, conn: asyncpg.Connection, connection: Integration, oid: uuid.UUID) -> ObjectRow:
        root = _root_row(connection)
        row = root if oid == root.object_id else await store.get_by_id(conn, connection.id, oid)
        if row is None:
            raise NotFound(f"Data object '{oid}' was not found in connection '{connection.external_id}'.")
        return row

    async def _page(self, conn: asyncpg.Connection, connection: Integration, rows: list[ObjectRow],
                    limit: int) -> Page:  # fmt: skip
        objects = await self._build(conn, connection, rows[:limit])
        return Page(objects, objects[-1].keyset if len(rows) > limit else None)

    async def _build(
        self, conn: asyncpg.Connection, connection: Integration, rows: list[ObjectRow]
    ) -> list[DataObject]:
        """Objects with their settings: three queries for any number of rows."""
        keys = [row.key for row in rows]
        overrides = await store.overrides_along(conn, connection.id, keys)
        below = await store.overridden_below(conn, connection.id, keys)
        synced = await store.sync_times(conn, connection.id)
        built = []
        for row in rows:
            own = overrides.get(row.key)
            settings = effective_of(row.key, overrides)
            built.append(DataObject(
                connection=connection, key=row.key, kind=row.kind, name=row.name, id=row.object_id,
                created_at=row.created_at or connection.created_at, updated_at=row.updated_at or connection.updated_at,
                last_synced_at=_last_listed(row.key, settings.is_active, synced), settings=settings,
                overrides=own.names if own is not None and row.key != ROOT else [],
                overridden_below=below.get(row.key, set()),
            ))  # fmt: skip
        return built

    # ---- changes --------------------------------------------------------------------------

    async def change_settings(
        self, principal: Principal, key: str, object_key: str, change: SettingsChange
    ) -> tuple[DataObject, RunState]:
        """Set overrides on one object. Returns it and the task: a SYSTEM sync of the object when the change
        activated an inactive subtree (a 409 while another sync is pending or running: that one would not list
        the subtree, and nothing is changed), else a SETTINGS_UPDATE task that already succeeded."""
        async with self._rt.pool.acquire() as conn, conn.transaction():
            connection = await editable_integration(conn, principal, key, lock=True)
            before = await self._one(conn, connection, object_key)
            overrides = await store.overrides_along(conn, connection.id, [object_key])
            changed = overrides.get(object_key, NONE).changed(change, at_root=object_key == ROOT)
            await store.save_overrides(conn, connection.id, object_key, changed, self._rt.clock(),
                                       principal.principal_id)  # fmt: skip
            after = await self._one(conn, connection, object_key)
            if after.settings.is_active and not before.settings.is_active and connection.enabled:
                scope = object_key if after.kind not in TABLE_LEVEL else parent_of(object_key)
                return after, await self._connections.start(conn, connection, SyncRequest("system", scope=scope))
            sent = _sent_settings(change)
            message = f"Settings of '{'/'.join(after.path)}' changed: {', '.join(sent) or 'nothing'}."
            task = await record_task(self._rt, conn, connection,
                                     TaskRecord("settings", requester(principal), object_key, message))  # fmt: skip
            return after, task

    async def delete(
        self, principal: Principal, key: str, object_key: str, *, deregisters: bool
    ) -> tuple[int, RunState | None]:
        """Delete an object and its descendants at once; returns how many data objects were below it and the
        DATA_OBJECT_DELETE task. The root is the connection: deleting it deregisters the connection (no task)
        where `deregisters`, else it is a conflict (Immuta's v2 deletes connections on their own endpoint)."""
        if object_key == ROOT:
            if not deregisters:
                raise Conflict(f"This data object is connection '{key}' itself: delete the connection instead.")
            async with self._rt.pool.acquire() as conn:
                connection = await editable_integration(conn, principal, key)
                below = await store.count_descendants(conn, connection.id, ROOT)
            await self._connections.delete(principal, key, require_inactive=False)
            return below, None
        async with self._rt.pool.acquire() as conn, conn.transaction():
            connection = await editable_integration(conn, principal, key, lock=True)
            target = await self._one(conn, connection, object_key)
            if await run_reads.active_run(conn, connection.id):
                raise ActiveSync(
                    f"A sync of connection '{key}' is pending or running; delete '{'/'.join(target.path)}' after it "
                    "ends (or cancel it)."
                )
            keys, below = await store.subtree(conn, connection.id, object_key)
            await store.delete_subtree_settings(conn, connection.id, object_key)
            message = f"Deleted '{'/'.join(target.path)}' and {below} data objects below it ({len(keys)} assets)."
            task = await record_task(self._rt, conn, connection, TaskRecord(
                "delete", requester(principal), object_key, message, deleted=tuple(keys)))  # fmt: skip
            return below, task

    async def crawl(self, principal: Principal, key: str, object_key: str, force_recursive: bool) -> RunState:
        """A sync limited to the subtree of an object (not a table-level one) of an active connection."""
        async with self._rt.pool.acquire() as conn, conn.transaction():
            connection = await editable_integration(conn, principal, key, lock=True)
            target = await self._one(conn, connection, object_key)
            if target.kind in TABLE_LEVEL:
                raise InvalidInput("A crawl cannot happen at the table level; crawl its schema.", field="objectPath")
            return await self._connections.start_sync(conn, connection, SyncRequest(
                "manual", requester(principal), scope=object_key or None, force_recursive=force_recursive))  # fmt: skip


def _last_listed(key: str, active: bool, synced: dict[str, store.SyncTimes]) -> datetime | None:
    """When a sync last listed the object's children: any sync of it or an ancestor, or for an inactive
    object only a forceRecursive one (the others leave inactive subtrees alone)."""
    times = [t.synced_at if active else t.forced_at for k in lineage(key) if (t := synced.get(k)) is not None]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _sent_settings(change: SettingsChange) -> list[str]:
    return [
        field.alias or name for name, field in SettingsChange.model_fields.items() if name in change.model_fields_set
    ]
