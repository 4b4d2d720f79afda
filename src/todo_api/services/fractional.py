"""Fractional indexing: order keys that always leave room between two neighbours.

A key is an "integer part" (a head letter giving its length, then base-62 digits) and
an optional fractional part; keys compare bytewise (the `position` column is
`COLLATE "C"`). Between any two keys another one exists, so moving a task writes
only that task's key and never renumbers the list. This is David Greenspan's
scheme ("Implementing Fractional Indexing"), the one Figma and Linear describe.

Keys of new tasks come from a database sequence instead (`s` + 19 decimal digits,
see `models.POSITION_DEFAULT`): decimal digits are base-62 digits, so those are
valid integer parts too, and each sorts after every key generated before it.
"""

from __future__ import annotations

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE = len(DIGITS)
_ZERO = DIGITS[0]
#: The smallest integer part; never used as a key so that one always fits before.
_SMALLEST = "A" + _ZERO * 26


class PositionKeyError(ValueError):
    """A key that this scheme could not have produced, or no room left."""


def _integer_length(head: str) -> int:
    if "a" <= head <= "z":
        return ord(head) - ord("a") + 2
    if "A" <= head <= "Z":
        return ord("Z") - ord(head) + 2
    raise PositionKeyError(f"invalid order key head {head!r}")


def _split(key: str) -> tuple[str, str]:
    if not key:
        raise PositionKeyError("empty order key")
    length = _integer_length(key[0])
    if length > len(key):
        raise PositionKeyError(f"order key too short: {key!r}")
    integer, fraction = key[:length], key[length:]
    if any(ch not in DIGITS for ch in key[1:]):
        raise PositionKeyError(f"order key with a foreign character: {key!r}")
    if fraction.endswith(_ZERO) or key == _SMALLEST:
        raise PositionKeyError(f"invalid order key: {key!r}")
    return integer, fraction


def _midpoint(low: str, high: str | None) -> str:
    """A fraction strictly between `low` and `high` (None: 1), neither ending in zero."""
    if high is not None:
        # Skip the common prefix, reading a missing digit of `low` as zero.
        n = 0
        while n < len(high) and (low[n] if n < len(low) else _ZERO) == high[n]:
            n += 1
        if n:
            return high[:n] + _midpoint(low[n:], high[n:])
    digit_low = DIGITS.index(low[0]) if low else 0
    digit_high = DIGITS.index(high[0]) if high is not None else _BASE
    if digit_high - digit_low > 1:
        return DIGITS[(digit_low + digit_high + 1) // 2]
    if high is not None and len(high) > 1:
        return high[:1]
    return DIGITS[digit_low] + _midpoint(low[1:], None)


def _increment(integer: str) -> str | None:
    head, digits = integer[0], list(integer[1:])
    for i in reversed(range(len(digits))):
        d = DIGITS.index(digits[i]) + 1
        if d < _BASE:
            digits[i] = DIGITS[d]
            return head + "".join(digits)
        digits[i] = _ZERO
    if head == "Z":
        return "a" + _ZERO
    if head == "z":
        return None
    new_head = chr(ord(head) + 1)
    if new_head > "a":
        digits.append(_ZERO)
    else:
        digits.pop()
    return new_head + "".join(digits)


def _decrement(integer: str) -> str | None:
    head, digits = integer[0], list(integer[1:])
    for i in reversed(range(len(digits))):
        d = DIGITS.index(digits[i]) - 1
        if d >= 0:
            digits[i] = DIGITS[d]
            return head + "".join(digits)
        digits[i] = DIGITS[-1]
    if head == "a":
        return "Z" + DIGITS[-1]
    if head == "A":
        return None
    new_head = chr(ord(head) - 1)
    if new_head < "Z":
        digits.append(DIGITS[-1])
    else:
        digits.pop()
    return new_head + "".join(digits)


def key_between(low: str | None, high: str | None) -> str:
    """A key strictly between `low` and `high`; None means the start or the end."""
    if low is not None and high is not None and low >= high:
        raise PositionKeyError(f"{low!r} is not before {high!r}")
    if low is None:
        if high is None:
            return "a" + _ZERO
        integer, fraction = _split(high)
        if integer == _SMALLEST:
            return integer + _midpoint("", fraction)
        if integer < high:
            return integer
        lower = _decrement(integer)
        if lower is None:
            raise PositionKeyError("no room before the first key")
        return lower
    integer, fraction = _split(low)
    if high is None:
        higher = _increment(integer)
        return integer + _midpoint(fraction, None) if higher is None else higher
    high_integer, high_fraction = _split(high)
    if integer == high_integer:
        return integer + _midpoint(fraction, high_fraction)
    higher = _increment(integer)
    if higher is not None and higher < high:
        return higher
    return integer + _midpoint(fraction, None)


def keys_between(low: str | None, high: str | None, count: int) -> list[str]:
    """`count` ascending keys strictly between `low` and `high`, kept short."""
    if count <= 0:
        return []
    if count == 1:
        return [key_between(low, high)]
    if high is None:
        keys = [key_between(low, None)]
        for _ in range(count - 1):
            keys.append(key_between(keys[-1], None))
        return keys
    if low is None:
        keys = [key_between(None, high)]
        for _ in range(count - 1):
            keys.append(key_between(None, keys[-1]))
        return keys[::-1]
    middle = count // 2
    pivot = key_between(low, high)
    return [
        *keys_between(low, pivot, middle),
        pivot,
        *keys_between(pivot, high, count - middle - 1),
    ]
