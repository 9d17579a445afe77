"""Bearer tokens: the operator's (every account) or an account's own (that account only)."""

from __future__ import annotations

import hmac

from aiohttp import web

from lookup.accounts import Account, hash_token
from router.keys import CONFIG

__all__ = ["SESSION_COOKIE", "require_account_access", "require_operator", "token_allows"]

SESSION_COOKIE = "mango_router_token"  # set by the settings page's sign-in


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return request.cookies.get(SESSION_COOKIE) or None
    return token.strip()


def _is_operator(request: web.Request, token: str) -> bool:
    operator = request.app[CONFIG].admin_token
    return operator is not None and hmac.compare_digest(operator.encode(), token.encode())


def require_operator(request: web.Request) -> None:
    token = _bearer(request)
    if token is None:
        raise web.HTTPUnauthorized(text='{"error": "a bearer token is required"}',
                                   content_type="application/json")
    if not _is_operator(request, token):
        raise web.HTTPForbidden(text='{"error": "the operator token is required"}',
                                content_type="application/json")


def token_allows(request: web.Request, account: Account, token: str) -> bool:
    """The operator's token, or this account's own."""
    if _is_operator(request, token):
        return True
    return account.token_hash is not None and hmac.compare_digest(
        account.token_hash.encode(), hash_token(token).encode()
    )


def require_account_access(request: web.Request, account: Account) -> None:
    """401 without a token; 403 for a token that is not the operator's nor this account's."""
    token = _bearer(request)
    if token is None:
        raise web.HTTPUnauthorized(text='{"error": "a bearer token is required"}',
                                   content_type="application/json")
    if token_allows(request, account, token):
        return
    raise web.HTTPForbidden(text='{"error": "this token has no access to this account"}',
                            content_type="application/json")
