"""The HTTP API: one aiohttp app, one module per API dialect over the shared domain."""
