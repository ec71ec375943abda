"""A bounded open-loop HTTP load generator: a fixed request rate for a fixed time, then it stops by itself.

Open loop: request i is due at start + i / rate whether or not earlier ones were answered, and its latency counts
from that due time. A slow server therefore cannot slow the generator down and hide its own slowness (no
coordinated omission); when the generator itself falls behind, that shows as send lag and counts as latency too.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from tests.bench.support import HEADERS, percentile

TIMEOUT_S = 5.0  # a request unanswered this long counts as a timeout (an error), its latency as this long


@dataclass
class LoadResult:
    rate: float
    sent: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds from due time to answer or failure, every request
    send_lags: list[float] = field(default_factory=list)  # seconds the generator sent each request after its due time
    outcomes: Counter[str] = field(default_factory=Counter)  # HTTP status, "timeout" or "connection error"
    elapsed: float = 0.0  # the first due time -> the last answer

    @property
    def errors(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if not outcome.isdigit() or outcome.startswith("5"))

    @property
    def answered_rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def describe(self) -> str:
        ms = [latency * 1000 for latency in self.latencies]
        statuses = ", ".join(f"{outcome}: {n}" for outcome, n in sorted(self.outcomes.items()))
        return (f"p50 {percentile(ms, 0.5):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms; "
                f"{self.sent} sent at {self.rate:g}/s, answered at {self.answered_rate:.1f}/s; {{{statuses}}}; "
                f"errors (5xx, timeouts, connection errors) {self.errors}; generator send lag p99 "
                f"{percentile(self.send_lags, 0.99) * 1000:.1f} ms")  # fmt: skip


async def open_loop(
    session: aiohttp.ClientSession, method: str, url_of: Callable[[int], str], rate: float, seconds: float
) -> LoadResult:
    """Send round(rate * seconds) requests, request i to url_of(i) when it is due; return once all are answered."""
    loop = asyncio.get_running_loop()
    result = LoadResult(rate)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)

    async def send(index: int, due: float) -> None:
        result.send_lags.append(loop.time() - due)
        try:
            async with session.request(method, url_of(index), headers=HEADERS, timeout=timeout) as response:
                await response.read()
                outcome = str(response.status)
        except TimeoutError:
            outcome = "timeout"
        except aiohttp.ClientError:
            outcome = "connection error"
        result.latencies.append(loop.time() - due)
        result.outcomes[outcome] += 1

    start = loop.time()
    sends: list[asyncio.Task[None]] = []
    for index in range(round(rate * seconds)):
        due = start + index / rate
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        sends.append(asyncio.create_task(send(index, due)))
        result.sent += 1
    await asyncio.gather(*sends)
    result.elapsed = loop.time() - start
    return result
