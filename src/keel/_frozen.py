"""A read-only JSON object: what a typed, frozen boundary object holds where its content is
JSON (an evaluation report's sections, an audit event's figures).

It is a `dict` (JSON encoders, `isinstance(x, dict)` and pickling see one), whose mutating
methods raise TypeError, so a frozen object cannot be changed through it. Nested values are
frozen too: a section's entries cannot be changed either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn


class FrozenDict(dict[str, Any]):
    """A dict that refuses to change after it is built."""

    __slots__ = ()

    def _refuse(self, *_args: Any, **_kwargs: Any) -> NoReturn:
        msg = "This JSON object is part of a frozen record and cannot be changed; copy it with dict(...)"
        raise TypeError(msg)

    __setitem__ = _refuse
    __delitem__ = _refuse
    __ior__ = _refuse
    clear = _refuse
    pop = _refuse
    popitem = _refuse
    setdefault = _refuse
    update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, _memo: dict[int, Any]) -> FrozenDict:
        return self


def freeze(value: Any) -> Any:
    """`value` with every JSON object in it (at any depth) a FrozenDict. Arrays stay lists,
    JSON's own shape, so they compare equal to the lists a caller expects."""
    if isinstance(value, FrozenDict):
        return value
    if isinstance(value, Mapping):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return [freeze(v) for v in value]
    return value


def thaw(value: Any) -> Any:
    """Plain dicts and lists again: what a caller may change."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value
