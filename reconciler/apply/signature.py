"""An optional detached signature on a saved plan: HMAC-SHA256 over the plan's canonical JSON, with the key in
`RECONCILER_PLAN_KEY`. With the key set, `reconciler plan --out plan.json` also writes `plan.json.sig`, and
`reconciler apply --plan plan.json` refuses a plan whose signature is missing or wrong: the pipeline can prove
that the file came from its own plan job, not only that it re-derives from the config.

The key comes only from the environment; it is never written, logged or put in a message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

KEY_ENV = "RECONCILER_PLAN_KEY"
#: A shorter key is refused: an HMAC is only as strong as its key.
MIN_KEY_LENGTH = 16
PREFIX = "hmac-sha256:"
_MAX_SIGNATURE_BYTES = 256


class SignatureError(Exception):
    """The plan's signature is missing or wrong, or the key is unusable (the message never holds the key)."""


def plan_key(env: dict[str, str] | None = None) -> bytes | None:
    """The signing key from the environment, or None when none is set."""
    value = (os.environ if env is None else env).get(KEY_ENV, "")
    if not value:
        return None
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:                   # bytes that are no UTF-8 arrive as surrogates: say so, not where
        raise SignatureError(f"{KEY_ENV} is not UTF-8 text: use printable characters (e.g. the output of "
                             "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)") from None
    if len(value) < MIN_KEY_LENGTH:
        raise SignatureError(f"{KEY_ENV} is too short: use at least {MIN_KEY_LENGTH} characters (e.g. the output "
                             "of `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return encoded


def canonical(data: Any) -> bytes:
    """One byte form per plan document: sorted keys, no spaces, ASCII (the file's layout does not matter)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(data: Any, key: bytes) -> str:
    return PREFIX + hmac.new(key, canonical(data), hashlib.sha256).hexdigest()


def signature_path(plan_path: Path) -> Path:
    """Where the detached signature of a plan file lives: beside it, `.sig` appended."""
    return plan_path.with_name(plan_path.name + ".sig")




def check_signature(plan_path: Path, data: Any, key: bytes, sig_path: Path | None = None) -> None:
    """Raise `SignatureError` unless the detached signature of `data` is present and made with `key`."""
    path = sig_path or signature_path(plan_path)
    try:
        if path.exists() and not path.is_file():
            raise SignatureError(f"the plan's signature {path} is not a regular file")
        with path.open("rb") as handle:          # a signature is one line: never read more than a little
            text = handle.read(_MAX_SIGNATURE_BYTES).decode("ascii").strip()
    except FileNotFoundError:
        raise SignatureError(f"{KEY_ENV} is set, but the plan has no signature ({path} does not exist): apply "
                             "only plans that the pipeline's plan job wrote with the same key") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SignatureError(f"cannot read the plan's signature {path}: {reason}") from None
    if not hmac.compare_digest(text.encode("ascii", "replace"), sign(data, key).encode()):
        raise SignatureError(f"the plan's signature ({path}) does not match: the plan was changed after it was "
                             f"signed, or signed with another {KEY_ENV}")
