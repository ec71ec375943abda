"""A resolver for tests: names mapped to addresses by the test, so no test ever asks a real DNS server."""

from __future__ import annotations

import socket

# Only ever resolved to and checked, never dialled: tests connect to 127.0.0.1 only.
PUBLIC_ADDRESS = "93.184.215.14"


class MappedResolver:
    """Answers from `table` and records each lookup; a name not in the table does not resolve."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]
