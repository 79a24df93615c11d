"""Small statistics helpers."""


def mean(values):
    """Return the arithmetic mean of values, or None when values is empty."""
    return sum(values) / len(values)


def spread(values):
    """Return the largest value minus the smallest one."""
    return max(values) - min(values)
