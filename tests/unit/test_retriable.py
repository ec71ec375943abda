"""One rule decides whether a consumer retries work (infrastructure trouble) or sets it aside (bad work)."""

import asyncpg
import pytest
from aiokafka.errors import CommitFailedError, KafkaConnectionError, MessageSizeTooLargeError, RequestTimedOutError

from shared.errors import is_retriable


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError(),
        TimeoutError(),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        KafkaConnectionError(),
        RequestTimedOutError(),
    ],
)
def test_infrastructure_trouble_is_retriable(error):
    assert is_retriable(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape sequence"),
        asyncpg.exceptions.NotNullViolationError("null value in column"),
        asyncpg.exceptions.InvalidTextRepresentationError("invalid input syntax"),
        MessageSizeTooLargeError(),
        CommitFailedError(),
        ValueError("a bug"),
    ],
)
def test_bad_work_is_not_retriable(error):
    assert not is_retriable(error)
