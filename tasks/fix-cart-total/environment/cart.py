"""A tiny shopping cart."""

import money


def checkout(prices):
    """Return the total of prices (text with two decimals) as text with two decimals."""
    total = sum(money.to_cents(price) for price in prices)
    return f"{total // 100}.{total % 100}"
