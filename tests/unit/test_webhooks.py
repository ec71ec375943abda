"""Webhooks without I/O: which run events notify, delivery ids, signatures, URLs, the retry schedule, targets."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.core.runs import AbortRun, CancelRun, Requester, RequestRun, RunState, decide, evolve
from services.core.webhooks import NewWebhook, WebhookEvent, WebhookFields
from services.notifier.delivery import RetryPolicy
from services.notifier.notifications import delivery_id, notification_for, notification_type
from services.notifier.signing import signature_header, verify
from services.notifier.targets import TargetPolicy, TargetRefused, check_literal
from shared.events import (
    AssetCountsPayload,
    FinishedPayload,
    RunCancelled,
    RunFailed,
    RunOwner,
    RunStarted,
    RunSucceeded,
    StartedPayload,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def queued() -> RunState:
    request = RequestRun(run_id=uuid.uuid4(), integration_id=uuid.uuid4(), integration_external_id="shop",
                         trigger="manual", requested_by=Requester("t", "1"), at=T0)  # fmt: skip
    [event] = decide(None, request)
    return evolve(None, event)


def test_the_reaper_s_end_of_a_run_is_run_reaped_and_a_rejected_report_s_abort_is_run_failed():
    state = queued()
    [reaped] = decide(state, AbortRun(reason="no connector picked it up", at=T0, reaped=True))
    [aborted] = decide(state, AbortRun(reason="a report was rejected", at=T0))
    assert notification_type(reaped) is WebhookEvent.RUN_REAPED
    assert notification_type(aborted) is WebhookEvent.RUN_FAILED


def test_a_reaped_run_whose_cancel_was_requested_is_still_run_reaped():
    state = queued()
    owner = RunOwner(connector_id="c", attempt=1)
    started = RunStarted(integration_id=state.integration_id, integration_external_id="shop", run_id=state.run_id,
                         owner=owner, payload=StartedPayload(connector_id="c"))  # fmt: skip
    state = evolve(state, started)
    [cancel_requested] = decide(state, CancelRun(requested_by=Requester("t", "1"), at=T0))
    state = evolve(state, cancel_requested)
    [event] = decide(state, AbortRun(reason="silent", at=T0, reaped=True))
    assert isinstance(event, RunCancelled)
    assert notification_type(event) is WebhookEvent.RUN_REAPED


def test_a_connector_cannot_make_its_own_failure_look_reaped():
    state = queued()
    owner = RunOwner(connector_id="c", attempt=1)
    finished = FinishedPayload(counts=AssetCountsPayload(), message="boom", reaped=True)
    failed = RunFailed(integration_id=state.integration_id, integration_external_id="shop", run_id=state.run_id,
                       owner=owner, payload=finished)  # fmt: skip
    assert notification_type(failed) is WebhookEvent.RUN_FAILED


def test_only_ends_of_runs_notify_and_the_body_says_how_the_run_ended():
    state = queued()
    [requested] = decide(None, RequestRun(run_id=uuid.uuid4(), integration_id=uuid.uuid4(),
                                          integration_external_id="x", trigger="manual",
                                          requested_by=Requester("t", "1"), at=T0))  # fmt: skip
    assert notification_for(requested) is None
    finished = FinishedPayload(counts=AssetCountsPayload(assets_created=3), message="ok")
    succeeded = RunSucceeded(integration_id=state.integration_id, integration_external_id="shop", run_id=state.run_id,
                             payload=finished)  # fmt: skip
    notification = notification_for(succeeded)
    assert notification is not None and notification.event_type == "run.succeeded"
    assert '"status":"SUCCESS"' in notification.body and '"assetsCreated":3' in notification.body


def test_one_event_has_one_delivery_id_per_subscription():
    webhook, other, event = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert delivery_id(webhook, event) == delivery_id(webhook, event)
    assert delivery_id(webhook, event) != delivery_id(other, event)


def test_a_signature_verifies_only_for_its_secret_body_and_a_recent_timestamp():
    body = b'{"type":"run.failed"}'
    header = signature_header("whsec_a", 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=")
    assert verify("whsec_a", header, body, now=1_700_000_100)
    assert not verify("whsec_b", header, body, now=1_700_000_100)
    assert not verify("whsec_a", header, body + b" ", now=1_700_000_100)
    assert not verify("whsec_a", header, body, now=1_700_000_000 + 301)  # a replay, later
    assert not verify("whsec_a", "v1=" + header.split("v1=")[1], body, now=1_700_000_000)  # no timestamp


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://hooks.example/x", "http:// or https://"),
        ("hooks.example/x", "http:// or https://"),
        ("https://", "no host"),
        ("https://user:pw@hooks.example/x", "user name or password"),
        ("https://hooks.example:99999/x", "not a valid URL"),
        ("https://hooks.example/x#frag", "fragment"),
        ("https://hooks example/x", "spaces or control characters"),
        ("https://hooks.example/\nx", "spaces or control characters"),
        ("https://hooks.example/" + "x" * 2000, "at most 2000"),
    ],
)
def test_subscription_urls_must_be_http_or_https_without_credentials(url, problem):
    with pytest.raises(ValidationError) as raised:
        NewWebhook(url=url)
    [error] = raised.value.errors()
    assert error["loc"] == ("url",) and problem in error["msg"]
    with pytest.raises(ValidationError):
        WebhookFields(url=url)


def test_a_subscription_hears_of_every_event_unless_told_and_each_event_once():
    assert NewWebhook(url="https://hooks.example/x").events == list(WebhookEvent)
    assert NewWebhook(url="http://127.0.0.1:8/x", events=["run.failed", "run.failed"]).events == ["run.failed"]
    with pytest.raises(ValidationError):
        NewWebhook(url="https://hooks.example/x", events=[])
    with pytest.raises(ValidationError):
        NewWebhook(url="https://hooks.example/x", events=["run.started"])


def test_retries_back_off_exponentially_with_jitter_up_to_a_cap_and_stop_after_the_last_attempt():
    policy = RetryPolicy(max_attempts=6, initial_s=10, max_s=60)
    waits = [(policy.next_attempt_at(n, T0) - T0).total_seconds() for n in range(1, 6)]  # type: ignore[operator]
    for n, wait in enumerate(waits[:2], start=1):
        assert 10 * 2 ** (n - 1) <= wait <= 10 * 2 ** (n - 1) + 10
    assert all(wait <= 60 for wait in waits) and waits[-1] == 60
    assert policy.next_attempt_at(6, T0) is None
    jittered = {policy.next_attempt_at(1, T0) for _ in range(20)}
    assert len(jittered) > 1 and all(T0 + timedelta(seconds=10) <= at for at in jittered)  # type: ignore[operator]


@pytest.mark.parametrize("address", ["169.254.169.254", "fe80::1"])
def test_a_link_local_target_is_refused_even_where_private_targets_are_allowed(address: str) -> None:
    # Cloud metadata services answer there: an installation that delivers to its own network still never goes there.
    with pytest.raises(TargetRefused, match="link-local"):
        TargetPolicy(allow_private=True).check("metadata.internal", address)
    with pytest.raises(TargetRefused, match="link-local"):
        check_literal(TargetPolicy(allow_private=True), address)


def test_targets_are_refused_outside_the_allowed_networks_and_private_ones_unless_allowed():
    public_only = TargetPolicy(allow_private=False)
    with pytest.raises(TargetRefused, match="non-public"):
        check_literal(public_only, "127.0.0.1")
    with pytest.raises(TargetRefused, match="non-public"):
        public_only.check("internal.example", "10.1.2.3")
    public_only.check("hooks.example", "93.184.216.34")
    check_literal(public_only, "hooks.example")  # a name: judged on what it resolves to
    loopback = TargetPolicy(allow_private=True, allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
    check_literal(loopback, "127.0.0.1")
    with pytest.raises(TargetRefused, match="WEBHOOK_ALLOWED_NETWORKS"):
        loopback.check("hooks.example", "93.184.216.34")
