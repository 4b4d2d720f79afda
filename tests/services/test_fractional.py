"""Fractional keys: always strictly between their neighbours, short, never renumbering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from todo_api.services.fractional import PositionKeyError, key_between, keys_between


def sequence_key(n: int) -> str:
    """The key the database gives a new task (`models.POSITION_DEFAULT`)."""
    return "s" + str(n).zfill(19)


@settings(max_examples=60, derandomize=True, database=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.booleans()), max_size=120))
def test_inserting_anywhere_keeps_keys_strictly_ordered(steps: list[tuple[int, bool]]) -> None:
    keys = [sequence_key(1), sequence_key(2)]
    for where, at_end in steps:
        if at_end:
            keys.append(key_between(keys[-1], None))
            continue
        i = where % (len(keys) + 1)
        low = keys[i - 1] if i > 0 else None
        high = keys[i] if i < len(keys) else None
        key = key_between(low, high)
        assert (low is None or low < key) and (high is None or key < high)
        keys.insert(i, key)
    assert keys == sorted(keys) == sorted(keys, key=str.encode)
    assert len(set(keys)) == len(keys)


def test_sequence_keys_are_valid_and_ordered() -> None:
    assert key_between(sequence_key(5), sequence_key(6)).startswith(sequence_key(5))
    assert key_between(None, sequence_key(5)) < sequence_key(5)
    assert key_between(None, sequence_key(0)) < sequence_key(0)


def test_keys_between_spreads_short_keys() -> None:
    spread = keys_between(None, None, 10_000)
    assert spread == sorted(spread) and len(set(spread)) == 10_000
    assert max(map(len, spread)) <= 4
    assert spread[-1] < sequence_key(0)  # respaced lists stay before new tasks
    inner = keys_between(sequence_key(1), sequence_key(2), 500)
    assert sequence_key(1) < inner[0] and inner[-1] < sequence_key(2)
    assert inner == sorted(inner)


@pytest.mark.parametrize(
    ("low", "high"), [("a1", "a1"), ("a2", "a1"), ("a0", "a10"), ("!", None), (None, "a")]
)
def test_impossible_requests_raise(low: str | None, high: str | None) -> None:
    with pytest.raises(PositionKeyError):
        key_between(low, high)
