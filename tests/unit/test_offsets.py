"""Offsets are committed only up to the oldest unfinished message of a partition we still own."""

from aiokafka import TopicPartition

from services.connector.offsets import OffsetTracker

TP = TopicPartition("t", 0)


def test_nothing_to_commit_before_anything_finished():
    tracker = OffsetTracker()
    tracker.started(TP, 5)
    assert tracker.to_commit() == {}


def test_out_of_order_completion_holds_the_commit_at_the_oldest_unfinished():
    tracker = OffsetTracker()
    generations = {offset: tracker.started(TP, offset) for offset in (5, 6, 7)}
    tracker.finished(TP, 7, generations[7])
    assert tracker.to_commit() == {TP: 5}  # 5 and 6 are still running: only "before 5" is done
    tracker.finished(TP, 5, generations[5])
    assert tracker.to_commit() == {TP: 6}
    tracker.finished(TP, 6, generations[6])
    assert tracker.to_commit() == {TP: 8}


def test_committed_offsets_are_not_offered_again():
    tracker = OffsetTracker()
    tracker.finished(TP, 0, tracker.started(TP, 0))
    tracker.committed(tracker.to_commit())
    assert tracker.to_commit() == {}


def test_revoked_partitions_are_forgotten():
    tracker = OffsetTracker()
    tracker.finished(TP, 0, tracker.started(TP, 0))
    tracker.forget({TP})
    assert tracker.to_commit() == {}


def test_work_finishing_after_its_partition_was_revoked_commits_nothing():
    tracker = OffsetTracker()
    generation = tracker.started(TP, 5)
    tracker.forget({TP})  # a rebalance moved the partition while the run kept executing
    tracker.finished(TP, 5, generation)
    assert tracker.to_commit() == {}


def test_late_work_of_an_earlier_ownership_never_moves_the_commit_point():
    tracker = OffsetTracker()
    old = tracker.started(TP, 5)
    tracker.forget({TP})
    new = tracker.started(TP, 9)  # assigned back: the group had committed 9 meanwhile
    tracker.finished(TP, 5, old)  # the old run ends late: it must not pull the commit point back to 6
    assert tracker.to_commit() == {}
    tracker.finished(TP, 9, new)
    assert tracker.to_commit() == {TP: 10}
