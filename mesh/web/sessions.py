"""Browser sessions of people who sign in to a console, and the CSRF token of each.

A session is a random 256-bit id in an ``HttpOnly; SameSite=Strict`` cookie; the database
keeps only its SHA-256 (a copied database file signs nobody in), the subject, the role, the
session's CSRF token and its deadlines: 8 hours at most, 1 hour idle. Rows live in the server's
own database (the ``WEB_SESSIONS_MIGRATION`` table), so any replica of the registry knows a
session another replica created, and signing out ends it everywhere.

Every state-changing request a session authenticates must carry the session's CSRF token, as
the ``csrf_token`` form field or the ``X-CSRF-Token`` header (``require_csrf``). The sign-in
form, before any session exists, uses a double-submit token: a random ``am_csrf`` cookie that
the form must repeat (``signin_token``/``check_signin_token``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import PermissionDenied
from mesh.web.forms import text_fields  # cached: the handler reads the same form again

SESSION_COOKIE = "am_session"
SIGNIN_COOKIE = "am_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
MAX_AGE = timedelta(hours=8)
IDLE = timedelta(hours=1)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

WEB_SESSIONS_MIGRATION = """
    CREATE TABLE web_sessions (
        id_sha256 TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        role TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        source TEXT NOT NULL
    );
    CREATE INDEX web_sessions_by_subject ON web_sessions(subject)
"""


@dataclass(frozen=True)
class WebSession:
    subject: str
    role: str
    csrf: str
    created_at: str
    expires_at: str


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Sessions in a server's database (one writer connection, like the rest of its data),
    carried by the cookie ``cookie`` on ``path`` (the resident portal uses its own cookie and
    path, so a resident and an operator in one browser never share a session)."""

    def __init__(self, db: Database, *, cookie: str = SESSION_COOKIE, path: str = "/") -> None:
        self.db = db
        self.cookie, self.path = cookie, path

    def id_of(self, request: web.Request) -> str:
        return request.cookies.get(self.cookie, "")

    def set_cookie(self, request: web.Request, response: web.StreamResponse,
                   session_id: str) -> None:
        response.set_cookie(self.cookie, session_id, httponly=True, samesite="Strict",
                            path=self.path, secure=request.secure,
                            max_age=int(MAX_AGE.total_seconds()))

    def clear_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(self.cookie, path=self.path)

    async def create(self, subject: str, role: str, source: str) -> tuple[str, WebSession]:
        """A new session (a new id: signing in never reuses an id a browser brought)."""
        session_id = secrets.token_urlsafe(32)
        now = utcnow()
        row = WebSession(subject, role, secrets.token_urlsafe(32), iso(now), iso(now + MAX_AGE))
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM web_sessions WHERE expires_at < ?", (iso(now),))
            await conn.execute(
                "INSERT INTO web_sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_digest(session_id), subject, role, row.csrf, row.created_at, row.expires_at,
                 iso(now), source[:200]))
        return session_id, row

    async def get(self, session_id: str) -> WebSession | None:
        """The live session of this id, its idle clock restarted; None when unknown, past its
        deadline or idle too long."""
        if not session_id or len(session_id) > 100:
            return None
        row = await self.db.fetchone("SELECT * FROM web_sessions WHERE id_sha256 = ?",
                                     (_digest(session_id),))
        if row is None:
            return None
        now = utcnow()
        if datetime.fromisoformat(row["expires_at"]) <= now or \
                datetime.fromisoformat(row["last_seen"]) + IDLE <= now:
            await self.end(session_id)
            return None
        if datetime.fromisoformat(row["last_seen"]) + timedelta(minutes=1) <= now:
            async with self.db.transaction() as conn:
                await conn.execute("UPDATE web_sessions SET last_seen = ? WHERE id_sha256 = ?",
                                   (iso(now), _digest(session_id)))
        return WebSession(row["subject"], row["role"], row["csrf"], row["created_at"],
                          row["expires_at"])

    async def end(self, session_id: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM web_sessions WHERE id_sha256 = ?",
                               (_digest(session_id),))

    async def end_all(self, subject: str) -> int:
        """Sign a person out everywhere (a disabled account, a changed password)."""
        async with self.db.transaction() as conn:
            cur = await conn.execute("DELETE FROM web_sessions WHERE subject = ?", (subject,))
            return cur.rowcount


def signin_token(request: web.Request, response: web.StreamResponse) -> str:
    """The double-submit token of the sign-in form: the cookie's if the browser has one."""
    token = request.cookies.get(SIGNIN_COOKIE, "")
    if not (20 <= len(token) <= 100 and token.isascii()):
        token = secrets.token_urlsafe(32)
        response.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="Strict", path="/",
                            secure=request.secure)
    return token


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def csrf_refused() -> PermissionDenied:
    return PermissionDenied("the form's CSRF token is missing or wrong; reload the page and "
                            "try again", code="csrf_token_invalid",
                            message_ja="フォームの確認用トークンがないか、正しくありません。"
                                       "ページを再読み込みしてからやり直してください")


def check_signin_token(request: web.Request, sent: str) -> None:
    if not _same(request.cookies.get(SIGNIN_COOKIE, ""), sent):
        raise csrf_refused()


async def require_csrf(request: web.Request, session: WebSession) -> None:
    """Refuse a state-changing request of a session that lacks the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.content_type in ("application/x-www-form-urlencoded",
                                             "multipart/form-data"):
        sent = (await text_fields(request)).get(CSRF_FIELD, "")
    if not _same(sent, session.csrf):
        raise csrf_refused()
