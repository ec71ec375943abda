"""Typed application and request keys shared by the API's modules."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from services.core.access import AccessService
from services.core.catalog import CatalogService
from services.core.connections import ConnectionService
from services.core.data_objects import ObjectService
from services.core.ingestion import Runtime
from services.core.integrations import IntegrationService
from services.core.model import Principal
from services.core.tasks import TaskService
from services.core.uploads import UploadService


@dataclass(frozen=True)
class ApiDeps:
    runtime: Runtime
    integrations: IntegrationService
    access: AccessService
    connections: ConnectionService
    objects: ObjectService
    tasks: TaskService
    uploads: UploadService
    catalog: CatalogService


DEPS = web.AppKey("deps", ApiDeps)
PRINCIPAL_KEY = web.RequestKey("principal", Principal)


def deps(request: web.Request) -> ApiDeps:
    return request.config_dict[DEPS]


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL_KEY]
