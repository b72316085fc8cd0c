"""Bearer keys, the same way in every service: a key is bound to one name (intake: a `source`; apology:
an agency code), and only its SHA-256 digest is configured and held in memory.

    INTAKE_SOURCE_KEYS="motcua-lang-son=sha256:<64 hex>,motcua-lang-son=sha256:<64 hex>"
    APOLOGY_OFFICER_KEYS="000.00.12.H10=sha256:<64 hex>"

One name may hold several keys (rotation: add the new one, hand it out, remove the old one); one key
serves one name. `python -m tthc_<service> hash-key KEY` prints the digest to configure, so a plain key
never sits in a configuration file or a process listing; a plain key in the setting is refused at start-up
(without echoing it). Keys are long random strings handed out by the deployment, so an unsalted digest is
enough. A presented key is hashed and compared with every configured digest in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DIGEST_PREFIX = "sha256:"
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class KeysError(ValueError):
    """A key setting that cannot be understood whole: the service must not start on half of it."""


def hash_key(key: str) -> str:
    """The text to configure for `key`: `sha256:<64 hex>`."""
    return DIGEST_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def bearer_key(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, or None."""
    if not authorization:
        return None
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


@dataclass(frozen=True)
class KeyHolder:
    """Whoever presented a valid key: `name` (a source, an agency code) and the key's short id (the first
    characters of its digest: it names the key in records and reveals nothing)."""

    name: str
    key_id: str


def _entries(value: Any, setting: str) -> Iterable[tuple[int, str, str]]:
    """(position, name, digest text) of `name=sha256:<hex>,...` or a JSON object {name: digest | [digests]}."""
    if isinstance(value, Mapping):
        position = 0
        for name, specs in value.items():
            for spec in ([specs] if isinstance(specs, str) else specs):
                position += 1
                yield position, str(name), str(spec)
        return
    text = str(value).strip()
    if text.startswith("{"):
        try:
            decoded = json.loads(text)
        except ValueError:
            raise KeysError(f"{setting}: not valid JSON") from None
        if not isinstance(decoded, dict):
            raise KeysError(f"{setting}: a JSON value must be an object {{name: digest}}")
        yield from _entries(decoded, setting)
        return
    for position, item in enumerate(text.split(","), start=1):
        if not item.strip():
            continue
        name, sep, spec = item.partition("=")
        if not sep:
            raise KeysError(f"{setting}: entry {position} must look like name=sha256:<64 hex>")
        yield position, name.strip(), spec.strip()


@dataclass(frozen=True)
class Keys:
    """The configured keys: {digest hex: name}."""

    digests: Mapping[str, str]
    prog: str = "tthc_<service>"

    @classmethod
    def parse(cls, value: Any, *, setting: str, prog: str, max_name_chars: int = 64) -> Keys:
        """Raises `KeysError` naming the entry and what to fix (never the value: it may be a plain key)."""
        digests: dict[str, str] = {}
        if value is None or isinstance(value, Keys):
            return value or cls({}, prog)
        for position, name, spec in _entries(value, setting):
            if not name or len(name) > max_name_chars:
                raise KeysError(f"{setting}: entry {position}: the name before '=' must be 1-{max_name_chars} "
                                "characters")
            digest = spec.lower()
            if not digest.startswith(DIGEST_PREFIX) or not _HEX_DIGEST.match(digest[len(DIGEST_PREFIX):]):
                raise KeysError(f"{setting}: entry {position} ({name}): give the key's digest as sha256:<64 hex>, "
                                f"printed by `python -m {prog} hash-key KEY`, not the key itself")
            digest = digest[len(DIGEST_PREFIX):]
            if digests.get(digest, name) != name:
                raise KeysError(f"{setting}: entry {position} ({name}): this key is already configured for "
                                "another name; one key serves one name")
            digests[digest] = name
        return cls(digests, prog)

    def identify(self, key: str | None) -> KeyHolder | None:
        """The holder of `key`, or None when it is missing or unknown."""
        if not key:
            return None
        presented = hashlib.sha256(key.encode("utf-8")).hexdigest()
        found: KeyHolder | None = None
        for digest, name in self.digests.items():  # no early exit: no timing hint of which one matched
            if hmac.compare_digest(presented.encode(), digest.encode()):
                found = KeyHolder(name=name, key_id=digest[:12])
        return found

    def names(self) -> set[str]:
        return set(self.digests.values())

    def __bool__(self) -> bool:
        return bool(self.digests)
