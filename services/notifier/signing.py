"""The signature of a delivery, as Stripe signs its webhooks: HMAC-SHA256 over `<timestamp>.<body>`.

Header `ICP-Signature: t=<unix seconds>,v1=<hex digest>`. A receiver recomputes the digest with the
subscription's secret over the timestamp, a '.', and the raw request body, compares in constant time, and
refuses timestamps older than a few minutes (a captured request cannot be replayed later). `ICP-Delivery-Id`
is the same on every attempt of one notification: the receiver's idempotency key.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "ICP-Signature"
DELIVERY_HEADER = "ICP-Delivery-Id"
EVENT_HEADER = "ICP-Event"
DEFAULT_TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance_s: float = DEFAULT_TOLERANCE_S) -> bool:
    """Whether `header` signs `body` with `secret`, at a time within `tolerance_s` of `now` (what a receiver does)."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        [timestamp] = [int(value) for value in fields.get("t", [])]
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in fields.get("v1", []))
