"""Offsets are committed only up to the oldest unfinished message of a partition."""

from aiokafka import TopicPartition

from services.connector.offsets import OffsetTracker

TP = TopicPartition("t", 0)


def test_nothing_to_commit_before_anything_finished():
    tracker = OffsetTracker()
    tracker.started(TP, 5)
    assert tracker.to_commit() == {}


def test_out_of_order_completion_holds_the_commit_at_the_oldest_unfinished():
    tracker = OffsetTracker()
    for offset in (5, 6, 7):
        tracker.started(TP, offset)
    tracker.finished(TP, 7)
    assert tracker.to_commit() == {TP: 5}  # 5 and 6 are still running: only "before 5" is done
    tracker.finished(TP, 5)
    assert tracker.to_commit() == {TP: 6}
    tracker.finished(TP, 6)
    assert tracker.to_commit() == {TP: 8}


def test_committed_offsets_are_not_offered_again():
    tracker = OffsetTracker()
    tracker.started(TP, 0)
    tracker.finished(TP, 0)
    tracker.committed(tracker.to_commit())
    assert tracker.to_commit() == {}


def test_revoked_partitions_are_forgotten():
    tracker = OffsetTracker()
    tracker.started(TP, 0)
    tracker.finished(TP, 0)
    tracker.forget({TP})
    assert tracker.to_commit() == {}
