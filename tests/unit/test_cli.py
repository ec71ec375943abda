"""The `icp` CLI against a canned aiohttp server: exit codes, one-line errors, parseable output, apply."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import patch

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from rich.console import Console
from typer.testing import CliRunner

from services.cli import output
from services.cli.client import parse_sse
from services.cli.main import app

RUN_ID = "5f0c6f9e-0000-4000-8000-000000000001"
PROBLEM = "application/problem+json"


class Canned:
    """An API that answers what a test set, and records what it was sent."""

    def __init__(self) -> None:
        self.integrations: dict[str, dict[str, Any]] = {}
        self.sent: list[tuple[str, str, Any]] = []
        self.outcome = "SUCCESS"
        self.status: dict[str, Any] = {}
        self.drop_stream_after = 0  # > 0: the first stream ends after that many events, the run still RUNNING
        self.resumed_after: list[str | None] = []  # the Last-Event-ID of each stream request
        self.ended = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/integrations", self.list)
        app.router.add_get("/api/integrations/{name}", self.get)
        app.router.add_post("/api/integrations", self.create)
        app.router.add_patch("/api/integrations/{name}", self.patch)
        app.router.add_post("/api/integrations/{name}/run", self.run)
        app.router.add_get("/api/integrations/{name}/runs/{id}/stream", self.stream)
        app.router.add_get("/api/integrations/{name}/runs/{id}", self.run_state)
        app.router.add_get("/api/system/status", self.system_status)
        return app

    async def system_status(self, _: web.Request) -> web.Response:
        return web.json_response(self.status)

    async def list(self, _: web.Request) -> web.Response:
        return web.json_response(list(self.integrations.values()))

    async def get(self, request: web.Request) -> web.Response:
        found = self.integrations.get(request.match_info["name"])
        if found is None:
            return web.json_response({"status": 404, "detail": "Integration 'x' was not found."}, status=404,
                                     content_type=PROBLEM)  # fmt: skip
        return web.json_response(found)

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.sent.append(("POST", request.path, body))
        self.integrations[body["externalId"]] = body
        return web.json_response(body, status=201)

    async def patch(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.sent.append(("PATCH", request.path, body))
        self.integrations[request.match_info["name"]] |= body
        return web.json_response(self.integrations[request.match_info["name"]])

    async def run(self, request: web.Request) -> web.Response:
        if request.headers.get("x-api-key") != "good-key":
            return web.json_response({"status": 403, "detail": "The API key was not found or not the expected value."},
                                     status=403, content_type=PROBLEM)  # fmt: skip
        return web.json_response({"ingestionRunId": RUN_ID}, status=202)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        after = request.headers.get("Last-Event-ID")
        self.resumed_after.append(after)
        kinds = ("requested", "started", "progressed", self.outcome.lower())
        for seq, kind in enumerate(kinds, start=1):
            if after is not None and seq <= int(after):
                continue
            if len(self.resumed_after) == 1 and seq > self.drop_stream_after > 0:
                return response  # ended early: the client must resume
            event = {"seq": seq, "type": f"run.{kind}.v1", "details": {"counts": {"assets_processed": seq}}}
            await response.write(f": keep-alive\nid: {seq}\ndata: {json.dumps(event)}\n\n".encode())
        self.ended = True
        return response

    async def run_state(self, _: web.Request) -> web.Response:
        counts = {"assetsProcessed": 4, "assetsCreated": 4, "assetsUpdated": 0, "assetsDeleted": 0}
        status = self.outcome if self.ended else "RUNNING"
        return web.json_response({"ingestionRunId": RUN_ID, "status": status, "message": "done"} | counts)


@pytest.fixture
async def api() -> AsyncIterator[tuple[Canned, str]]:
    canned = Canned()
    server = TestServer(canned.app(), host="127.0.0.1")
    await server.start_server()
    yield canned, str(server.make_url("")).rstrip("/")
    await server.close()


async def icp(url: str, *args: str, key: str = "good-key") -> tuple[int, str, str]:
    """Run the CLI in a thread (it is synchronous) while this loop serves the canned API."""
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, app, ["--url", url, "--api-key", key, *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(("outcome", "code"), [("SUCCESS", 0), ("FAILED", 1), ("CANCELLED", 2)])
async def test_run_follow_exits_with_the_runs_outcome(api, outcome: str, code: int) -> None:
    canned, url = api
    canned.outcome = outcome
    exit_code, out, _ = await icp(url, "run", "shop", "--follow")
    assert exit_code == code, out
    assert outcome in out


async def test_run_follow_resumes_a_stream_that_ended_before_the_run_after_the_last_event_seen(api) -> None:
    canned, url = api
    canned.drop_stream_after = 2  # as the server does to a reader that fell behind, or when it restarts
    exit_code, out, _ = await icp(url, "run", "shop", "--follow")
    assert exit_code == 0, out
    assert canned.resumed_after == [None, "2"]


async def test_an_api_problem_is_one_readable_line_and_exit_3_never_a_traceback(api) -> None:
    _, url = api
    exit_code, out, err = await icp(url, "run", "shop", key="wrong")
    assert exit_code == 3
    assert err.strip() == "error: 403: The API key was not found or not the expected value."
    assert "Traceback" not in out + err


async def test_an_unreachable_api_is_a_clear_message_and_exit_3() -> None:
    exit_code, _, err = await icp("http://127.0.0.1:9", "integrations", "list")
    assert exit_code == 3
    assert "cannot reach the API at http://127.0.0.1:9" in err and "Traceback" not in err


async def test_apply_creates_then_updates_by_external_id(api, tmp_path) -> None:
    canned, url = api
    spec = {"externalId": "shop", "name": "Shop", "source": "postgres", "configuration": {"host": "127.0.0.1"}}
    file = tmp_path / "shop.yaml"
    file.write_text(yaml.safe_dump(spec))
    assert (await icp(url, "integrations", "apply", "-f", str(file)))[:2] == (0, "integration shop created\n")
    assert (await icp(url, "integrations", "apply", "-f", str(file)))[:2] == (0, "integration shop updated\n")
    patch = {k: v for k, v in spec.items() if k not in ("externalId", "source")}
    assert canned.sent == [("POST", "/api/integrations", spec), ("PATCH", "/api/integrations/shop", patch)]

    file.write_text(yaml.safe_dump(spec | {"source": "custom"}))
    exit_code, _, err = await icp(url, "integrations", "apply", "-f", str(file))
    assert exit_code == 3 and "source cannot change" in err


@pytest.mark.parametrize("fmt", ["json", "yaml"])
async def test_listings_print_parseable_json_and_yaml(api, fmt: str) -> None:
    canned, url = api
    canned.integrations = {f"i{n}": {"externalId": f"i{n}", "name": "x" * 200, "source": "postgres"} for n in range(3)}
    exit_code, out, _ = await icp(url, "integrations", "list", "-o", fmt)
    assert exit_code == 0
    assert (json.loads(out) if fmt == "json" else yaml.safe_load(out)) == list(canned.integrations.values())


@pytest.mark.parametrize("ready", [True, False])
async def test_doctor_exits_0_only_when_the_system_is_ready(api, ready: bool) -> None:
    canned, url = api
    canned.status = {
        "ready": ready, "notReady": [] if ready else ["relay"],
        "services": [{"service": "relay", "instance": "h-1", "ready": ready, "stale": False,
                      "checks": {"outbox": "ok" if ready else "the oldest of 3 outbox rows waits since 90s"},
                      "seenAt": "2026-01-01T00:00:00Z"}],
        "consumerLag": [{"group": "projector", "topic": "t", "partition": 0, "lag": 2}], "consumerLagError": None,
        "outbox": {"depth": 3, "oldestAgeSeconds": 90.0}, "oldestQueuedRun": None,
        "deadLetters": {"reports": 0, "outbox": 1},
    }  # fmt: skip
    exit_code, out, _ = await icp(url, "doctor")
    assert exit_code == (0 if ready else 1)
    assert "projector 2" in out and ("not ready: relay" in out) is not ready


def test_server_sent_events_are_parsed_with_comments_skipped_and_data_lines_joined() -> None:
    lines = [": keep-alive", "id: 7", "event: run", 'data: {"a":', "data: 1}", "", "data: x", ""]
    events = list(parse_sse(iter(lines)))
    assert [(e.id, e.event, e.data) for e in events] == [("7", "run", '{"a":\n1}'), ("7", "message", "x")]


def test_a_table_shows_ids_whole_even_on_a_narrow_terminal(capsys) -> None:
    # `runs show RUN_ID` and `keys delete KEY_ID` need the whole id a listing showed.
    run_id = "fb6f4a1a-f0c1-4f3e-9a53-0d2c7c1f8e11"
    narrow = Console(width=80, force_terminal=False)
    with patch.object(output, "console", narrow):
        output.emit([{"ingestionRunId": run_id, "status": "SUCCESS", "message": "Processed 242 assets " * 6}],
                    output.Format.table, ["ingestionRunId", "status", "message"])  # fmt: skip
    assert run_id in capsys.readouterr().out


async def test_runs_show_refuses_events_and_changes_together_rather_than_silently_showing_one(api) -> None:
    _, url = api
    exit_code, _, err = await icp(url, "runs", "show", "shop", RUN_ID, "--events", "--changes")
    words = " ".join(word for word in err.split() if word.strip("│╭╮╰╯─"))  # rich boxes and wraps the message
    assert exit_code == 2 and "give one of them" in words, err
