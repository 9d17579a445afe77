"""Who is signed in to the pages, kept in a signed, encrypted, expiring cookie.

The cookie (aiohttp-session's ``EncryptedCookieStorage``: Fernet, so signed and
timed) holds who signed in, the account being looked at, a CSRF token and a
fingerprint of the token used, never the token itself. The fingerprint is an
HMAC of what the database keeps of the token (its hash) or of the operator's
token, so issuing a new account token (``mango-router account token``) or
changing ``ROUTER_ADMIN_TOKEN`` ends the sessions opened with the old one.

The key comes from ``ROUTER_SECRET_KEY`` or, without it, from a file made once
in the data directory; replicas on several machines share it through the
variable. Only page routes go through the session (``page`` wraps them), so
the PBX's webhooks pay nothing for it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp_session import Session, get_session, new_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from lookup.accounts import Account
from lookup.text import is_text
from router.auth import is_account_token, is_operator_token
from router.config import Config
from router.keys import ACCOUNTS, CONFIG

logger = logging.getLogger(__name__)

# aiohttp-session keeps its storage under string request keys, which aiohttp warns of
# once per key; the choice is the library's, so the serve log need not carry it.
warnings.filterwarnings("ignore", category=web.NotAppKeyWarning, module="aiohttp_session")

__all__ = [
    "COOKIE",
    "SESSION_HOURS",
    "SIGN_IN_COOKIE",
    "Keys",
    "Viewer",
    "check_csrf",
    "form_is_text",
    "open_session",
    "page",
    "secret_key",
    "set_sign_in_csrf",
    "sign_in_csrf",
    "sign_in_csrf_matches",
    "viewer",
]

COOKIE = "mango_router_session"
SIGN_IN_COOKIE = "mango_router_signin"  # the sign-in form's CSRF token (double submit)
SESSION_HOURS = 12
_KEY_FILE = "session.key"

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Keys:
    """What the pages sign with, made once at start (see ``secret_key``)."""

    secret: bytes
    middleware: Middleware


PAGE_KEYS = web.AppKey("page_keys", Keys)


def secret_key(config: Config) -> bytes:
    """32 bytes from ``ROUTER_SECRET_KEY``, or from ``session.key`` in the data
    directory, made (readable by its owner only) the first time.

    The file is written whole under another name and then linked into place, so a
    second process starting at once, or one after a crash, never reads half a key.
    """
    if config.secret_key is not None:
        return hashlib.sha256(config.secret_key.encode()).digest()
    path = Path(config.data_dir) / _KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        scratch = path.with_name(f".{_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(scratch, path)  # fails if another process was first: its key wins
            logger.info("made the pages' session key", extra={"path": str(path)})
        except FileExistsError:
            pass
        finally:
            scratch.unlink()
    text = path.read_text().strip()
    if len(text) < 32:
        raise ValueError(f"{path}: not a session key (remove it to have a new one made)")
    return hashlib.sha256(text.encode()).digest()


def _derived(secret: bytes, purpose: bytes) -> bytes:
    """One key per use (the cookie's encryption, the token fingerprints)."""
    return hmac.new(secret, purpose, hashlib.sha256).digest()


class _CookieStorage(EncryptedCookieStorage):
    """A cookie that is not ASCII was never ours (ours is a Fernet token, base64): no
    session, as for any cookie that does not decrypt (the library would fail to encode it)."""

    def load_cookie(self, request: web.Request) -> str | None:
        found = super().load_cookie(request)
        return found if found is None or found.isascii() else None


def make_keys(config: Config) -> Keys:
    """The cookie storage and the fingerprint key, from the one secret."""
    secret = secret_key(config)
    storage = _CookieStorage(
        _derived(secret, b"session cookie"), cookie_name=COOKIE,
        max_age=SESSION_HOURS * 3600, httponly=True, samesite="Strict", path="/",
        encoder=lambda value: orjson.dumps(value).decode(), decoder=orjson.loads)
    return Keys(secret=_derived(secret, b"token fingerprint"),
                middleware=session_middleware(storage))


def page(handler: PageHandler) -> PageHandler:
    """A handler that may read and write the session."""
    async def with_session(request: web.Request) -> web.StreamResponse:
        return await request.app[PAGE_KEYS].middleware(request, handler)
    with_session.__name__ = handler.__name__
    with_session.__doc__ = handler.__doc__
    return with_session


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is signed in and which account they look at."""

    operator: bool
    account: Account
    csrf: str


def _fingerprint(request: web.Request, secret_of_token: str) -> str:
    mac = hmac.new(request.app[PAGE_KEYS].secret, secret_of_token.encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def _operator_fp(request: web.Request) -> str | None:
    token = request.app[CONFIG].admin_token
    return None if token is None else _fingerprint(request, "operator:" + token)


def _account_fp(request: web.Request, account: Account) -> str | None:
    if account.token_hash is None:
        return None
    return _fingerprint(request, "account:" + account.token_hash)


def who_has(request: web.Request, token: str) -> tuple[bool, Account | None]:
    """(operator?, the account) a token opens: the operator's token opens every account
    (the ``default`` one first, else the first by name); an account's token its own."""
    accounts = request.app[ACCOUNTS].all()
    if is_operator_token(request, token):
        everyone = sorted(accounts, key=lambda a: (a.name != "default", a.name))
        return True, (everyone[0] if everyone else None)
    return False, next((a for a in accounts if is_account_token(a, token)), None)


async def open_session(request: web.Request, *, operator: bool, account: Account) -> None:
    """A fresh session (never the one from before sign-in) for who just signed in."""
    session = await new_session(request)
    fp = _operator_fp(request) if operator else _account_fp(request, account)
    session.update({"op": operator, "account": account.name, "fp": fp,
                    "csrf": secrets.token_urlsafe(24)})


async def viewer(request: web.Request) -> Viewer | None:
    """The signed-in viewer, or None (no session, expired, or its token replaced)."""
    session = await get_session(request)
    name = session.get("account")
    if not isinstance(name, str):
        return None
    account = request.app[ACCOUNTS].by_name(name)
    operator = session.get("op") is True
    expected = _operator_fp(request) if operator else (
        None if account is None else _account_fp(request, account))
    if account is None and operator:  # the account went away; the operator still may look
        everyone = sorted(request.app[ACCOUNTS].all(), key=lambda a: a.name)
        account = everyone[0] if everyone else None
    fp = session.get("fp")
    if account is None or expected is None or not isinstance(fp, str) or not hmac.compare_digest(
            fp, expected):
        session.invalidate()
        return None
    return Viewer(operator=operator, account=account, csrf=str(session.get("csrf", "")))


def sign_in_csrf(request: web.Request) -> str:
    """The sign-in form's CSRF token: the one in ``SIGN_IN_COOKIE`` if the browser has it,
    else a new one (``set_sign_in_csrf`` puts it there). It is kept apart from the
    session, so that opening the sign-in page (as a link from another site does, which
    a SameSite=Strict session cookie does not follow) never replaces a session."""
    found = request.cookies.get(SIGN_IN_COOKIE, "")
    return found if 16 <= len(found) <= 64 and found.isascii() else secrets.token_urlsafe(24)


def set_sign_in_csrf(response: web.StreamResponse, token: str) -> None:
    response.set_cookie(SIGN_IN_COOKIE, token, max_age=3600, httponly=True,
                        samesite="Strict", path="/signin")


def sign_in_csrf_matches(request: web.Request, sent: object) -> bool:
    return _same(sent, request.cookies.get(SIGN_IN_COOKIE))


async def check_csrf(request: web.Request, sent: object) -> bool:
    """The form's token is the session's (a form from another site has none)."""
    session: Session = await get_session(request)
    return _same(sent, session.get("csrf"))


def form_is_text(form: Mapping[str, object]) -> bool:
    """Every name and text value of a posted form is UTF-8 text (``is_text``): one that
    is not would fail where it is compared, stored or shown again."""
    return all(is_text(name) and (not isinstance(value, str) or is_text(value))
               for name, value in form.items())


def _same(sent: object, expected: object) -> bool:
    """Two non-empty CSRF tokens match; a cookie or field that is not text matches none."""
    return isinstance(sent, str) and isinstance(expected, str) and bool(sent) and \
        is_text(sent) and is_text(expected) and hmac.compare_digest(
            sent.encode(), expected.encode())
