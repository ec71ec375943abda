"""Which offsets are safe to commit when messages of a partition finish out of order (pure)."""

from __future__ import annotations

from aiokafka import TopicPartition


class OffsetTracker:
    """Commit point per owned partition = the oldest unfinished offset, or one past the newest finished.

    Each ownership of a partition is a generation: `started` returns it, and `finished` counts only for
    the generation that started the work. Work that finishes after a rebalance took its partition away (a
    run that kept executing) never moves a commit point, even if the partition came back since."""

    def __init__(self) -> None:
        self._inflight: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._generation: dict[TopicPartition, int] = {}

    def started(self, tp: TopicPartition, offset: int) -> int:
        self._inflight.setdefault(tp, set()).add(offset)
        return self._generation.get(tp, 0)

    def finished(self, tp: TopicPartition, offset: int, generation: int) -> None:
        if generation != self._generation.get(tp, 0) or tp not in self._inflight:
            return  # revoked since it started
        self._inflight[tp].discard(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def to_commit(self) -> dict[TopicPartition, int]:
        """Offsets that advanced since the last `committed()` call."""
        result: dict[TopicPartition, int] = {}
        for tp, nxt in self._next.items():
            pending = self._inflight.get(tp)
            point = min(pending) if pending else nxt
            if point > self._committed.get(tp, -1):
                result[tp] = point
        return result

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update({tp: offset for tp, offset in offsets.items() if tp in self._inflight})

    def forget(self, partitions: set[TopicPartition]) -> None:
        """After a rebalance took these partitions away, their offsets are no longer ours to commit."""
        for tp in partitions:
            self._inflight.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
            self._generation[tp] = self._generation.get(tp, 0) + 1
