"""The `icp` CLI as a user runs it (the installed console script) against the real stack: apply is idempotent,
`run --follow` exits with the outcome, `doctor` sees a stopped service, `-o json` parses."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.conftest import ADMIN_KEY, Client, Stack, postgres_integration
from tests.support import eventually

ICP = str(Path(sys.executable).with_name("icp"))


async def icp(stack: Stack, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    process = await start_icp(stack, *args)
    out, err = await asyncio.wait_for(process.communicate(), timeout=timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def start_icp(stack: Stack, *args: str) -> asyncio.subprocess.Process:
    env = stack.env | {"ICP_URL": stack.url, "ICP_API_KEY": ADMIN_KEY, "COLUMNS": "200"}
    return await asyncio.create_subprocess_exec(
        ICP, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def icp_json(stack: Stack, *args: str) -> Any:
    code, out, err = await icp(stack, *args, "-o", "json")
    assert code == 0, err
    return json.loads(out)


async def test_apply_is_idempotent_and_run_follow_exits_0_on_success(stack, client: Client, shop_dsn, tmp_path):
    file = tmp_path / "cli.yaml"
    file.write_text(yaml.safe_dump(postgres_integration(shop_dsn, "cli-e2e")))
    assert (await icp(stack, "integrations", "apply", "-f", str(file)))[:2] == (0, "integration cli-e2e created\n")
    first = await icp_json(stack, "integrations", "get", "cli-e2e")
    assert (await icp(stack, "integrations", "apply", "-f", str(file)))[:2] == (0, "integration cli-e2e updated\n")
    assert await icp_json(stack, "integrations", "get", "cli-e2e") == first
    assert [i for i in await icp_json(stack, "integrations", "list") if i["externalId"] == "cli-e2e"]

    code, out, err = await icp(stack, "run", "cli-e2e", "--follow", timeout=90)
    assert code == 0, out + err
    assert "SUCCESS" in out
    runs = await icp_json(stack, "runs", "list", "cli-e2e")
    assert [r["status"] for r in runs] == ["SUCCESS"]
    events = await icp_json(stack, "runs", "show", "cli-e2e", runs[0]["ingestionRunId"], "--events")
    assert events[0]["type"] == "run.requested.v1" and events[-1]["type"] == "run.succeeded.v1"
    changes = await icp_json(stack, "runs", "show", "cli-e2e", runs[0]["ingestionRunId"], "--changes")
    # Every key the run wrote is listed; the database (the level above schemas, a key without '/') is not counted.
    counted = [c for c in changes if "/" in c["key"]]
    assert len(counted) == runs[0]["assetsCreated"] > 0 and {c["change"] for c in changes} == {"created"}


async def test_run_follow_exits_2_when_the_run_is_cancelled(stack, client: Client, shop_dsn, locked_view):
    assert (await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, "cli-cancel-e2e")))[
        0
    ] == 201
    follower = await start_icp(stack, "run", "cli-cancel-e2e", "--follow")

    async def crawling() -> bool:  # the crawl now waits on the locked view
        status, run, _ = await client.call("GET", "/api/integrations/cli-cancel-e2e/runs/latest")
        if status != 200:
            return False
        _, events, _ = await client.call("GET", f"/api/integrations/cli-cancel-e2e/runs/{run['ingestionRunId']}/events")
        return any(e["type"] == "run.started.v1" for e in events)

    await eventually(crawling, timeout=30)
    assert (await icp(stack, "cancel", "cli-cancel-e2e"))[0] == 0
    out, err = await asyncio.wait_for(follower.communicate(), timeout=60)
    assert follower.returncode == 2, out.decode() + err.decode()
    assert "CANCELLED" in out.decode()


async def test_doctor_exits_0_with_the_stack_up_and_1_naming_a_stopped_service(stack):
    async def doctor_says(code: int) -> str | None:
        got, out, _ = await icp(stack, "doctor")
        return out if got == code else None

    await eventually(lambda: doctor_says(0), timeout=60, interval=1)
    stack.stop("scheduler")  # SIGTERM: it records itself stopped on the way out
    try:
        out = await eventually(lambda: doctor_says(1), timeout=30, interval=1)
        assert "not ready: scheduler" in out
        status = await icp(stack, "doctor", "-o", "json")
        assert status[0] == 1
        parsed = json.loads(status[1])
        assert parsed["ready"] is False and parsed["notReady"] == ["scheduler"]
        assert parsed["consumerLagError"] is None and {lag["group"] for lag in parsed["consumerLag"]} >= {"projector"}
    finally:
        stack.start("scheduler")
    await eventually(lambda: doctor_says(0), timeout=60, interval=1)
