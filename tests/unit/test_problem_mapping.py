"""Exceptions a handler raises map to problem responses: infrastructure trouble is a 503, never a 500."""

import json

import asyncpg
import pytest
from aiohttp.test_utils import make_mocked_request

from services.api.problems import error_response
from services.core.errors import Gone


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ],
)
def test_an_unavailable_database_is_a_503_problem(error):
    response = error_response(error, make_mocked_request("GET", "/api/integrations"))
    assert response.status == 503 and response.content_type == "application/problem+json"
    assert "unavailable" in json.loads(response.text)["detail"]


def test_a_bug_is_a_500_problem():
    response = error_response(KeyError("x"), make_mocked_request("GET", "/api/integrations"))
    assert response.status == 500 and response.content_type == "application/problem+json"


def test_compacted_changes_are_a_410_problem_that_tells_why():
    request = make_mocked_request("GET", "/api/integrations/shop/runs/r/changes")
    response = error_response(Gone("compacted on 2026-01-02; its counts remain: 3 created"), request)
    assert response.status == 410 and response.content_type == "application/problem+json"
    assert json.loads(response.text)["detail"] == "compacted on 2026-01-02; its counts remain: 3 created"
