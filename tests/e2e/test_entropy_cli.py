"""The real `entropy-data` CLI (PyPI) against our API, with more integrations than one page of 50.

The CLI resolves an externalId or display name by listing integrations once, without paging, as the
Entropy specification allows; so the list must return every visible integration.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.e2e.conftest import Client, Stack, postgres_integration

pytestmark = pytest.mark.e2e

CLI = Path(sys.executable).with_name("entropy-data")  # installed with the dev dependencies
COUNT = 60


async def entropy_data(stack: Stack, home: Path, key: str, *args: str) -> tuple[int, str]:
    """Run the CLI the way a user would: host and key from its environment variables, nothing else of ours."""
    assert urlparse(stack.url).hostname == "127.0.0.1"  # the CLI's default host is a public one: never that
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "NO_COLOR": "1", "NO_PROXY": "*",
           "ENTROPY_DATA_HOST": stack.url, "ENTROPY_DATA_API_KEY": key, "ENTROPY_DATA_TIMEOUT": "30"}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        str(CLI), *args, cwd=home, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    return process.returncode or 0, output.decode()


async def test_the_entropy_cli_finds_run_and_cancels_integrations_past_the_first_50(
    client: Client, stack: Stack, shop_dsn: str, tmp_path: Path
) -> None:
    assert (await client.call("POST", "/api/teams", json={"externalId": "cli", "name": "CLI"}))[0] == 201
    names = [f"cli-{i:03d}" for i in range(COUNT)]
    for name in names:
        body = postgres_integration(shop_dsn, name, owningTeamExternalId="cli")
        assert (await client.call("POST", "/api/integrations", json=body))[0] == 201
    grants = [{"teamExternalId": "cli", "permissions": ["INGESTION_VIEW", "INGESTION_EDIT"]}]
    status, issued, _ = await client.call("POST", "/api/api-keys", json={"name": "cli", "teams": grants})
    assert status == 201
    key = issued["key"]

    code, output = await entropy_data(stack, tmp_path, key, "-o", "json", "integrations", "list")
    assert code == 0, output
    assert [i["externalId"] for i in json.loads(output)] == names

    code, output = await entropy_data(stack, tmp_path, key, "-o", "json", "integrations", "get", "cli-057")
    assert code == 0, output
    assert json.loads(output)["configuration"]["database"] == "source_shop_e2e"
    code, output = await entropy_data(stack, tmp_path, key, "-o", "json", "integrations", "get", "Source cli-058")
    assert code == 0 and json.loads(output)["externalId"] == "cli-058", output

    code, output = await entropy_data(
        stack, tmp_path, key, "integrations", "run", "cli-057", "--wait", "--poll-interval", "1", "--timeout", "60"
    )
    assert code == 0 and "SUCCESS" in output, output
    code, output = await entropy_data(stack, tmp_path, key, "-o", "json", "integrations", "runs", "cli-057")
    assert code == 0, output
    runs = json.loads(output)
    assert [(r["integrationExternalId"], r["status"]) for r in runs] == [("cli-057", "SUCCESS")]
    assert runs[0]["assetsProcessed"] > 0

    code, output = await entropy_data(stack, tmp_path, key, "integrations", "run", "cli-059")
    assert code == 0 and "Run scheduled" in output, output
    code, output = await entropy_data(stack, tmp_path, key, "integrations", "cancel", "cli-059")
    assert code == 0 and "Cancellation requested" in output, output
    run = await client.wait_for_run("cli-059", {"SUCCESS", "FAILED", "CANCELLED"})
    assert run["status"] in ("CANCELLED", "SUCCESS")  # the crawl of a small database may finish first
    assert list(tmp_path.iterdir()) == []  # the CLI wrote no configuration of its own
