"""Which account a request is for, and bearer tokens: the operator's (every account) or
an account's own (that account only)."""

from __future__ import annotations

import hmac

from aiohttp import web

from lookup.accounts import Account, hash_token
from lookup.text import is_text
from router.errors import ApiError
from router.keys import ACCOUNTS, CONFIG

__all__ = [
    "account_from_query",
    "admin_account",
    "is_account_token",
    "is_operator_token",
    "require_operator",
    "token_allows",
]

def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_operator_token(request: web.Request, token: str) -> bool:
    operator = request.app[CONFIG].admin_token
    return operator is not None and is_text(token) and hmac.compare_digest(
        operator.encode(), token.encode())


def is_account_token(account: Account, token: str) -> bool:
    # a token that is not text was never issued: refused, not hashed
    return account.token_hash is not None and is_text(token) and hmac.compare_digest(
        account.token_hash.encode(), hash_token(token).encode())


def account_from_query(request: web.Request) -> Account:
    """``?account=NAME`` (``default`` when absent); an unknown name is a 400.

    No token is checked here: ``GET /route`` needs none. Admin endpoints use
    ``admin_account``.
    """
    name = request.query.get("account", "default")
    account = request.app[ACCOUNTS].by_name(name)
    if account is None:
        raise ApiError(400, f"unknown account {name!r}")
    return account


def admin_account(request: web.Request, *, name: str | None = None) -> Account:
    """The account an admin request is for, once its token is seen to open it.

    401 without a token, first: a caller with no token learns nothing, not even
    whether an account of that name exists. For the operator's token, an unknown
    ``?account=NAME`` is a 400 and an unknown name in the path a 404 (there is no
    such resource). Any other token gets 403 for a name it does not open, known or
    not, so an account's token cannot probe for other accounts' names.
    """
    token = _bearer(request)
    if token is None:
        raise ApiError(401, "a bearer token is required")
    unknown_status = 404 if name is not None else 400
    if name is None:
        name = request.query.get("account", "default")
    account = request.app[ACCOUNTS].by_name(name)
    if account is not None and token_allows(request, account, token):
        return account
    if account is None and is_operator_token(request, token):
        raise ApiError(unknown_status, f"unknown account {name!r}")
    raise ApiError(403, "this token has no access to this account")


def require_operator(request: web.Request) -> None:
    token = _bearer(request)
    if token is None:
        raise ApiError(401, "a bearer token is required")
    if not is_operator_token(request, token):
        raise ApiError(403, "the operator token is required")


def token_allows(request: web.Request, account: Account, token: str) -> bool:
    """The operator's token, or this account's own."""
    return is_operator_token(request, token) or is_account_token(account, token)
