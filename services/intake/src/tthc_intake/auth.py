"""Source keys: every one-stop system posts with `Authorization: Bearer <key>`, bound to one `source`.

Only SHA-256 digests of the keys are configured and held in memory; a presented key is hashed and
compared with `hmac.compare_digest` against every configured digest (no early exit, no timing hint).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any

DIGEST_PREFIX = "sha256:"


def hash_key(key: str) -> str:
    """The digest to configure for `key`: `sha256:<64 hex>`."""
    return DIGEST_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _digest_of(spec: str) -> str:
    """`sha256:<hex>` -> the hex digest; anything else is a plain key -> its digest."""
    spec = spec.strip()
    if spec.lower().startswith(DIGEST_PREFIX):
        digest = spec[len(DIGEST_PREFIX):].lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("a sha256: key digest must be 64 hexadecimal characters")
        return digest
    if not spec:
        raise ValueError("empty source key")
    return hashlib.sha256(spec.encode("utf-8")).hexdigest()


def _pairs(value: Any) -> Iterable[tuple[str, str]]:
    if isinstance(value, Mapping):
        for source, specs in value.items():
            for spec in ([specs] if isinstance(specs, str) else specs):
                yield str(source), str(spec)
        return
    text = str(value).strip()
    if not text:
        return
    if text.startswith("{"):
        yield from _pairs(json.loads(text))
        return
    for item in text.split(","):
        if not item.strip():
            continue
        source, sep, spec = item.partition("=")
        if not sep:
            raise ValueError("INTAKE_SOURCE_KEYS entries look like source=sha256:<hex> or source=<key>")
        yield source.strip(), spec


def parse_source_keys(value: Any) -> dict[str, str]:
    """{digest hex: source}. One source may have several keys (rotation); a key serves one source."""
    if value is None:
        return {}
    digests: dict[str, str] = {}
    for source, spec in _pairs(value):
        if not source or len(source) > 64:
            raise ValueError("a source name is 1-64 characters")
        digest = _digest_of(spec)
        if digests.get(digest, source) != source:
            raise ValueError("one key is configured for two sources")
        digests[digest] = source
    return digests


def bearer_key(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def source_for_key(key: str | None, digests: Mapping[str, str]) -> str | None:
    """The source bound to `key`, or None when the key is missing or unknown."""
    if not key:
        return None
    presented = hashlib.sha256(key.encode("utf-8")).hexdigest().encode()
    found: str | None = None
    for digest, source in digests.items():
        if hmac.compare_digest(presented, digest.encode()):
            found = source
    return found
