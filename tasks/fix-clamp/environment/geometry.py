"""Small geometry helpers."""


def clamp(value, lo, hi):
    """Return value limited to the closed range lo..hi (lo <= hi)."""
    return max(hi, min(value, lo))


def midpoint(a, b):
    """Return the point halfway between points a and b, each an (x, y) tuple."""
    return ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
