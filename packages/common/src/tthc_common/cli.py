"""The command line of a service that authenticates by configured key digests (intake, apology):

    python -m PROG                 serve
    python -m PROG hash-key KEY    print the digest of KEY to configure, so the key itself never is

Light on purpose: `hash-key` imports nothing of the service beyond its `hash_key`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def service_main(prog: str, argv: list[str] | None, *, hash_key: Callable[[str], str],
                 serve: Callable[[], int]) -> int:
    """Run the command `argv` (default: the process's arguments); returns the exit code (2: bad usage)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["hash-key"]:
        if len(args) != 2:
            print(f"usage: python -m {prog} hash-key KEY", file=sys.stderr)
            return 2
        print(hash_key(args[1]))
        return 0
    if args:
        print(f"usage: python -m {prog} [hash-key KEY]", file=sys.stderr)
        return 2
    return serve()
