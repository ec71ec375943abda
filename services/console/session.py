"""Console sessions: log in with an API key, checked on every request exactly as the API checks keys; a per-session
CSRF token on every POST; logout.

The session is the API key itself, Fernet-encrypted (AES-CBC + HMAC, with a timestamp that bounds its age) into an
HttpOnly, SameSite=Strict cookie, together with the session's CSRF token. Why not a signed session id: every
request then authenticates the key as the API does (`AccessService.authenticate`), so revoking the key or changing
its teams takes effect on the next click, and no session table needs writing, expiring or sharing between
replicas. The browser only ever holds ciphertext it cannot read or forge.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass

import aiohttp_jinja2
from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken

from services.api.auth import BAD_KEY
from services.api.context import deps
from services.api.problems import Handler
from services.console.settings import ConsoleSettings
from services.core.model import Principal

COOKIE = "icp_console"
LOGIN_COOKIE = "icp_console_login"  # the login form's CSRF token (double submit): no session exists yet
CSRF_FIELD = "csrf"
COOKIE_PATH = "/console"
PUBLIC_ROUTES = frozenset({"login", "static"})


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str


class SessionCipher:
    """Seals (API key, CSRF token) into a cookie value and opens it again, refusing tampered or expired ones."""

    def __init__(self, settings: ConsoleSettings) -> None:
        key = settings.session_key.get_secret_value() if settings.session_key else Fernet.generate_key().decode()
        try:
            self._fernet = Fernet(key.encode())
        except (ValueError, TypeError):
            raise ValueError(
                "CONSOLE_SESSION_KEY must be a urlsafe-base64 32-byte key; create one with "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            ) from None
        self.max_age_s = int(settings.session_hours * 3600)

    def seal(self, api_key: str) -> tuple[str, str]:
        """(cookie value, CSRF token) of a new session."""
        csrf = secrets.token_urlsafe(32)
        return self._fernet.encrypt(json.dumps({"k": api_key, "c": csrf}).encode()).decode(), csrf

    def open(self, value: str) -> tuple[str, str] | None:
        """(API key, CSRF token), or None for a cookie this process did not seal or one older than the session."""
        try:
            data = json.loads(self._fernet.decrypt(value.encode(), ttl=self.max_age_s))
            return str(data["k"]), str(data["c"])
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None


SESSIONS = web.AppKey("console_sessions", SessionCipher)
SESSION = web.RequestKey("console_session", Session)


def session(request: web.Request) -> Session:
    return request[SESSION]


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page but the login form needs a live session; every POST needs the session's CSRF token."""
    resource = request.match_info.route.resource
    if resource is not None and resource.name in PUBLIC_ROUTES:
        return await handler(request)
    opened = request.app[SESSIONS].open(request.cookies.get(COOKIE, ""))
    found = await deps(request).access.authenticate(opened[0]) if opened else None
    if opened is None or found is None:  # none, expired, tampered, or its key was revoked since
        if request.method == "GET":
            response = web.HTTPSeeOther(request.app.router["login"].url_for())
            response.del_cookie(COOKIE, path=COOKIE_PATH)
            raise response
        raise web.HTTPUnauthorized(text="Log in to the console first.")
    request[SESSION] = Session(found, opened[1])
    if request.method == "POST":
        form = await request.post()
        if not _same(form.get(CSRF_FIELD), opened[1]):
            raise web.HTTPForbidden(text="The form's CSRF token is missing or stale: reload the page and try again.")
    return await handler(request)


def _same(sent: object, expected: str | None) -> bool:
    return isinstance(sent, str) and bool(expected) and hmac.compare_digest(sent.encode(), str(expected).encode())


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request, error=None, status=200)


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    if not _same(form.get(CSRF_FIELD), request.cookies.get(LOGIN_COOKIE)):
        return _login_page(request, error="The login form expired: try again.", status=403)
    api_key = str(form.get("api_key", "")).strip()
    if not api_key or await deps(request).access.authenticate(api_key) is None:
        return _login_page(request, error=BAD_KEY, status=401)
    value, _ = request.app[SESSIONS].seal(api_key)
    response = web.HTTPSeeOther(request.app.router["integrations"].url_for())
    _set_cookie(request, response, COOKIE, value, request.app[SESSIONS].max_age_s)
    response.del_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    raise response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther(request.app.router["login"].url_for())
    response.del_cookie(COOKIE, path=COOKIE_PATH)
    raise response


def _login_page(request: web.Request, error: str | None, status: int) -> web.Response:
    token = secrets.token_urlsafe(32)
    response = aiohttp_jinja2.render_template("login.html", request, {"error": error, "csrf": token}, status=status)
    _set_cookie(request, response, LOGIN_COOKIE, token, 3600)
    return response


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
    # HttpOnly: no script reads it; Strict: no other site's page sends it (the first line of CSRF defence);
    # Secure whenever the console is reached over HTTPS (a plain-HTTP localhost would never send it back).
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True, samesite="Strict",
                        secure=request.secure)  # fmt: skip
