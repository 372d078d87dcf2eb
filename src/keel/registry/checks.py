"""The checks an alias move and a model name pass before the registry reads or writes anything.

Every refusal is a ConfigError naming the field, its value and what was expected; the HTTP
API, the dashboard, the command line and the loop all call these, so they refuse alike.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from keel.store import ConfigError

ALIASES = ("production", "staging", "shadow", "canary")
SEGMENT_ALIAS = re.compile(r"production:[A-Za-z0-9_.-]{1,39}")  # a model per segment value


def check_model_name(name: Any) -> str:
    """`name` if it is a model name keel allows (letters, digits, '_', '.', '-'), else
    ConfigError. Every registered model has such a name, so a call naming anything else (a
    NUL byte that PostgreSQL would refuse, an '@') is refused before the database sees it."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}", name):
        msg = f"Model name {name!r} is not allowed; expected letters, digits, '_', '.', '-' (no '@'), e.g. 'fraud'."
        raise ConfigError(msg)
    return name


MAX_VERSION = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL
MAX_REASON_CHARS = 2000


def check_alias(alias: Any) -> str:
    """`alias` if keel knows it (one of ALIASES, or `production:VALUE`), else ConfigError."""
    if not isinstance(alias, str) or (alias not in ALIASES and not SEGMENT_ALIAS.fullmatch(alias)):
        msg = (
            f"Alias {alias!r} is not one keel knows; expected one of {list(ALIASES)}, or "
            "'production:VALUE' to answer the rows whose segment column has that value."
        )
        raise ConfigError(msg)
    return alias


def says_something(reason: str | None) -> bool:
    """Whether a reason has a visible character: blanks, zero-width and other invisible
    characters (`\u200b`, `\u00a0`, ...) alone say nothing, so they do not justify a forced move."""
    return any(unicodedata.category(ch)[0] not in "CZ" for ch in reason or "")


def check_reason(reason: Any) -> str | None:
    """`reason` if it is text (or None) of at most MAX_REASON_CHARS, else ConfigError."""
    if reason is not None and not isinstance(reason, str):
        msg = f"Field 'reason' is {reason!r} ({type(reason).__name__}); expected text saying why, e.g. 'beats production on May data'."
        raise ConfigError(msg)
    if reason is not None and "\x00" in reason:
        msg = "Field 'reason' holds a NUL character; expected text without one."
        raise ConfigError(msg)
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        msg = f"Field 'reason' has {len(reason)} characters; expected at most {MAX_REASON_CHARS}."
        raise ConfigError(msg)
    return reason


def check_move(alias: Any, version: Any, *, weight: Any = None, reason: Any = None) -> float | None:
    """Check the arguments of an alias move before anything is read or written.

    The alias is one keel knows; the version is a whole number from 1 (a bool is not one,
    though Python counts it as an int); `weight` is given for the canary alone, a number in
    (0, 1]; `reason` is text. Returns the weight as a float (or None).

    Raises:
        ConfigError: naming the field, its value and what was expected.
    """
    check_alias(alias)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        msg = f"Field 'version' is {version!r}; expected a version number (a whole number from 1 to {MAX_VERSION})."
        raise ConfigError(msg)
    check_reason(reason)
    if alias != "canary":
        if weight is not None:
            msg = f"Field 'weight' is {weight!r}; a weight applies to the canary alias only, not to {alias!r}: leave it out."
            raise ConfigError(msg)
        return None
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not 0 < weight <= 1  # NaN fails this too
    ):
        msg = f"Field 'weight' is {weight!r}; the canary alias needs a weight between 0 and 1: a number in (0, 1], the share of traffic it takes (0.1 is 10 %)."
        raise ConfigError(msg)
    return float(weight)
