"""Helpers for number sequences."""


def evens_between(lo, hi):
    """Return the even numbers from lo to hi, both ends included, in ascending order."""
    return [n for n in range(lo, hi) if n % 2 == 0]


def squares(count):
    """Return the first count square numbers, starting at 0."""
    return [n * n for n in range(count)]
