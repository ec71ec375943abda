"""One rule for every consumer: is an error worth retrying the same work for, or is the work itself bad?"""

from __future__ import annotations

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

# SQLSTATE classes that say nothing about the statement itself: connection exceptions, transaction
# rollbacks (serialization failures, deadlocks), insufficient resources, operator intervention
# (admin shutdown, cannot connect now), system errors.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")


def is_retriable(error: BaseException) -> bool:
    """True for infrastructure trouble (retry later, nothing is wrong with the data), False for bad work."""
    if isinstance(error, OSError | TimeoutError | asyncpg.InterfaceError | KafkaConnectionError | KafkaTimeoutError):
        return True
    if isinstance(error, asyncpg.exceptions.InternalClientError):
        return True  # asyncpg's protocol state after the server killed the connection mid-operation (a restart)
    if isinstance(error, asyncpg.PostgresError):
        sqlstate = getattr(error, "sqlstate", None) or ""
        return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES
    if isinstance(error, KafkaError):
        return bool(getattr(error, "retriable", False))
    return bool(getattr(error, "retriable", False))
