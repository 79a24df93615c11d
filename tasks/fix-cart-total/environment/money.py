"""Prices as text ("12.50") and as integer cents (1250)."""


def to_cents(text):
    """Return the price in text as integer cents: "12.50" -> 1250."""
    return round(float(text) * 10)


def to_text(cents):
    """Return integer cents as a price with two decimals: 1250 -> "12.50"."""
    return f"{cents // 100}.{cents % 100:02d}"
