"""Every process of the stack answers on its ops port, and its /metrics counts what a real run did."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import SERVICES, Client, Stack, postgres_integration
from tests.support import SHOP_COUNTED, eventually

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def scrape(stack: Stack, name: str) -> Samples:
    status, text = await get(stack.ops_url(name, "/metrics"))
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_every_process_of_the_stack_is_live_and_ready_on_its_ops_port(stack: Stack) -> None:
    async def all_ready() -> dict[str, Any] | None:
        answers = {name: await get(stack.ops_url(name, "/readyz")) for name in SERVICES}
        return answers if all(status == 200 for status, _ in answers.values()) else None

    await eventually(all_ready, timeout=60, interval=0.5)
    for name in SERVICES:
        assert await get(stack.ops_url(name, "/livez")) == (200, '{"status": "alive"}')
        assert "process_cpu_seconds_total" in (await get(stack.ops_url(name, "/metrics")))[1]


async def test_metrics_count_a_real_run_in_each_process(stack: Stack, client: Client, shop_dsn: str) -> None:
    before = await scrape(stack, "projector")
    status, _, _ = await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, "ops-metrics"))
    assert status == 201
    assert (await client.call("POST", "/api/integrations/ops-metrics/run"))[0] == 202
    run = await client.wait_for_run("ops-metrics", {"SUCCESS", "FAILED", "CANCELLED"})
    assert run["status"] == "SUCCESS", run
    await client.call("GET", "/api/integrations/no-such-integration-7f3a")  # a raw path that must not be a label

    async def projected() -> Samples | None:
        after = await scrape(stack, "projector")
        done = value(after, "icp_runs_finished_total", status="SUCCESS", kind="sync", trigger="manual")
        return (
            after
            if done > value(before, "icp_runs_finished_total", status="SUCCESS", kind="sync", trigger="manual")
            else None
        )

    after = await eventually(projected, timeout=30)
    assert (
        value(after, "icp_assets_changed_total", change="created")
        - value(before, "icp_assets_changed_total", change="created")
        >= SHOP_COUNTED
    )
    assert value(after, "icp_run_duration_seconds_count", status="SUCCESS") > value(
        before, "icp_run_duration_seconds_count", status="SUCCESS"
    )
    assert value(after, "icp_run_events_total", outcome="applied") > value(
        before, "icp_run_events_total", outcome="applied"
    )
    assert value(after, "icp_projector_caught_up_age_seconds") < 60

    api = await scrape(stack, "api")
    route = "/api/integrations/{externalId}/run"
    assert value(api, "icp_http_request_duration_seconds_count", method="POST", route=route, status="202") >= 1
    assert value(api, "icp_http_request_duration_seconds_count", method="GET", route="/api/integrations/{externalId}",
                 status="404") >= 1  # fmt: skip
    assert not any("no-such-integration-7f3a" in str(labels) for _, labels in api)

    scheduler = await scrape(stack, "scheduler")
    assert value(scheduler, "icp_runs", status="SUCCESS", source="postgres", trigger="manual") >= 1

    relay = await scrape(stack, "relay")
    assert value(relay, "icp_outbox_published_total") > 0 and ("icp_outbox_depth", frozenset()) in relay

    connector = await scrape(stack, "connector")
    assert ("icp_connector_runs_in_flight", frozenset()) in connector
    lags = [labels for name, labels in connector if name == "icp_consumer_lag_messages"]
    assert {dict(labels)["group"] for labels in lags} >= {"connector"}, lags
