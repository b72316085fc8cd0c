"""Officer keys: each key is bound to one agency, and only its SHA-256 digest is configured.

    APOLOGY_OFFICER_KEYS="000.00.12.H10=<sha256 hex>,000.30.21.H10=<sha256 hex>"

(`sha256:<hex>`, as intake writes its source keys, is accepted too; a plain key is refused.)

`python -m tthc_apology hash-key KEY` prints the digest of a key. An agency may hold several keys (one
entry each), so a key can be replaced without locking the agency out. Keys are long random strings
handed out by the deployment, so an unsalted digest is enough: it only has to keep the plain key out
of configuration files and process listings.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class OfficerKeysError(ValueError):
    """APOLOGY_OFFICER_KEYS is malformed: the service must not start with half of it understood."""


@dataclass(frozen=True)
class Officer:
    """Whoever presented a valid key: an officer of `agency_code`."""

    agency_code: str
    key_id: str  # the first characters of the key's digest: names the key in records, reveals nothing


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class OfficerKeys:
    entries: tuple[tuple[str, str], ...] = ()  # (agency_code, sha256 hex digest)

    @classmethod
    def parse(cls, text: str) -> OfficerKeys:
        entries: list[tuple[str, str]] = []
        for position, item in enumerate(text.split(","), start=1):
            item = item.strip()
            if not item:
                continue
            agency, sep, digest = item.partition("=")
            agency, digest = agency.strip(), digest.strip().lower()
            if digest.startswith("sha256:"):  # the form intake's source keys use, accepted here too
                digest = digest[len("sha256:"):]
            if not sep or not agency:
                raise OfficerKeysError(f"entry {position}: expected agency_code=sha256hex")
            if not _HEX_DIGEST.match(digest):
                # never echo the value: someone may have pasted a plain key here by mistake
                raise OfficerKeysError(
                    f"entry {position} ({agency}): the key must be given as its SHA-256 digest, 64 hex "
                    "characters (python -m tthc_apology hash-key KEY)"
                )
            entries.append((agency, digest))
        digests = [d for _, d in entries]
        if len(set(digests)) != len(digests):
            raise OfficerKeysError("the same key digest is listed twice")
        return cls(tuple(entries))

    def identify(self, key: str | None) -> Officer | None:
        """The officer holding `key`, or None. Compares every entry in constant time."""
        if not key:
            return None
        digest = hash_key(key)
        found: Officer | None = None
        for agency, expected in self.entries:
            if hmac.compare_digest(digest, expected):
                found = Officer(agency_code=agency, key_id=digest[:12])
        return found

    def __bool__(self) -> bool:
        return bool(self.entries)
