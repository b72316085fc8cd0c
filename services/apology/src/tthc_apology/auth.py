"""Who is asking: an officer key from the `Authorization: Bearer` header, or (browser) the inbox cookie."""

from __future__ import annotations

from fastapi import HTTPException, Request

from .officer_keys import Officer, OfficerKeys

COOKIE_NAME = "apology_key"


def bearer_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def officer_from(request: Request, keys: OfficerKeys, *, allow_cookie: bool) -> Officer | None:
    key = bearer_key(request)
    if key is None and allow_cookie:
        key = request.cookies.get(COOKIE_NAME)
    return keys.identify(key)


def require_officer(request: Request, keys: OfficerKeys, *, allow_cookie: bool = False) -> Officer:
    officer = officer_from(request, keys, allow_cookie=allow_cookie)
    if officer is None:
        raise HTTPException(status_code=401, detail="a valid officer key is required",
                            headers={"WWW-Authenticate": "Bearer"})
    return officer
