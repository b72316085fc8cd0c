"""Deterministic ids: a derived event's id is a UUIDv5 of its cause, so a replay yields the same ids."""

import uuid

NAMESPACE = uuid.UUID("6f0c3a52-8e4b-5d2e-9a57-2b3f7f0c1d11")


def derived_id(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join(str(p) for p in parts)))
