"""Who is asking: an officer key (tthc_common.keys, bound to one agency code) from the
`Authorization: Bearer` header, or, in a browser, the inbox's login cookie."""

from __future__ import annotations

from tthc_common.keys import KeyHolder, Keys, bearer_key

COOKIE_NAME = "apology_key"


def officer_from(keys: Keys, *, authorization: str | None, cookie: str | None = None) -> KeyHolder | None:
    """The officer (`name` is the agency code) holding the bearer key, else the cookie's key, else None."""
    return keys.identify(bearer_key(authorization) or cookie)
