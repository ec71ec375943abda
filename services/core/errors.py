"""The domain's error hierarchy. Each error carries whether retrying the same request can succeed."""

from __future__ import annotations


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


class AlreadyRunning(Conflict):
    """A run is already active for the integration (the atomic claim was taken)."""

    retriable = True


class InvalidInput(DomainError):
    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class TransitionRejected(DomainError):
    """An event does not apply to the run's current state (e.g. it arrived after a terminal state)."""


class Unavailable(DomainError):
    retriable = True
