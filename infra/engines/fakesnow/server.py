"""fakesnow's HTTP server (`fakesnow -s`), with three gaps to Snowflake closed for snowflake-connector-python 5.x.

Run by infra/engines/fakesnow.sh in the emulator's own venv: `python server.py --host 127.0.0.1 --port 18085`.
- Login answers with a master token and its validity, which the 5.x connector requires (fakesnow 0.12 sends only
  the session token, so every 5.x login fails with "Missing response field: master token").
- Login checks the password against FAKESNOW_PASSWORD (fakesnow accepts any), refusing others as Snowflake does
  (code 390100), so that a wrong password can be tested.
- An abort request (what the connector sends when a running query is cancelled) interrupts the session's running
  DuckDB query (fakesnow only answers "success" and lets the query run on).
Everything else is fakesnow's own, unchanged: its data lives in memory for the life of the process.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import logging
import os
import secrets
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

fakesnow_server: Any = importlib.import_module("fakesnow.server")  # `fakesnow.server` the attribute is a function
logger = logging.getLogger("fakesnow.server")


async def _body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return json.loads(body) if body else {}


async def login(request: Request) -> JSONResponse:
    data = (await _body(request)).get("data", {})
    expected = os.environ.get("FAKESNOW_PASSWORD", "")
    if expected and not secrets.compare_digest(str(data.get("PASSWORD", "")), expected):
        logger.info("Session login refused for %r: incorrect password", data.get("LOGIN_NAME"))
        return JSONResponse({"data": {"nextAction": "RETRY_LOGIN", "authnMethod": "USERNAME_PASSWORD"},
                             "code": "390100", "message": "Incorrect username or password was specified.",
                             "success": False, "headers": None})  # fmt: skip
    response = await fakesnow_server.login_request(request)
    answer = json.loads(response.body)
    session = answer["data"]
    session.update(masterToken=f"master-{secrets.token_urlsafe(32)}", validityInSeconds=3600,
                   masterValidityInSeconds=14400, sessionId=secrets.randbelow(10**15))  # fmt: skip
    return JSONResponse(answer)


async def abort(request: Request) -> JSONResponse:
    token = (request.headers.get("Authorization") or "")[17:-1]  # 'Snowflake Token="<token>"'
    connection = fakesnow_server.sessions.get(token)
    if connection is not None:
        logger.info("Abort request: interrupting the session's running query")
        connection._duck_conn.interrupt()
    return JSONResponse({"data": None, "code": None, "message": None, "success": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18085)
    args = parser.parse_args()
    replaced = {"/session/v1/login-request": login, "/queries/v1/abort-request": abort}
    app = fakesnow_server.app
    app.router.routes = [
        Route(route.path, replaced[route.path], methods=["POST"]) if route.path in replaced else route
        for route in app.router.routes
    ]
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
