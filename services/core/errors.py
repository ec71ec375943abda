"""The domain's error hierarchy. Each error carries whether retrying the same request can succeed."""

from __future__ import annotations

from pydantic import ValidationError


class DomainError(Exception):
    retriable = False

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    pass


class Forbidden(DomainError):
    pass


class Conflict(DomainError):
    pass


class Gone(DomainError):
    """Something that existed was removed on purpose and will not come back (a run's compacted asset changes)."""


class AlreadyRunning(Conflict):
    """A run is already active for the integration (the atomic claim was taken)."""

    retriable = True


class InvalidInput(DomainError):
    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class CredentialsRequired(InvalidInput):
    """A change of where or as whom stored credentials are sent, without sending them again (always a 422)."""


class TransitionRejected(DomainError):
    """An event does not apply to the run's current state (e.g. it arrived after a terminal state)."""


def field_errors(error: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """(field, message) for each problem, without echoing input values (they may hold credentials)."""
    found = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        field = f"{prefix}.{location}" if prefix and location else (location or prefix or "body")
        found.append((field, item["msg"].removeprefix("Value error, ")))
    return found
