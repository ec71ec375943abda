"""Encryption at rest of integration credentials (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from services.core.errors import DomainError

# Only for APP_ENV=dev|test: a fixed key so that a fresh local install works. Never used otherwise.
DEV_CREDENTIALS_KEY = "ZGV2LW9ubHktY3JlZGVudGlhbHMta2V5LTMyYnl0ZXM="


class CredentialsKeyMissing(DomainError):
    pass


class CredentialCipher:
    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode())
        except (ValueError, TypeError):
            raise CredentialsKeyMissing(
                "CREDENTIALS_KEY must be a urlsafe-base64 32-byte key; create one with "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            ) from None

    @classmethod
    def from_settings(cls, key: str | None, is_dev: bool) -> CredentialCipher:
        if key:
            return cls(key)
        if is_dev:
            return cls(DEV_CREDENTIALS_KEY)
        raise CredentialsKeyMissing(
            "CREDENTIALS_KEY is not set; refusing to start outside APP_ENV=dev|test without an encryption key"
        )

    def encrypt(self, credentials: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(credentials).encode())

    def decrypt(self, token: bytes) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads(self._fernet.decrypt(token))
        except InvalidToken:
            raise DomainError("stored credentials cannot be decrypted with the configured CREDENTIALS_KEY") from None
        return value
