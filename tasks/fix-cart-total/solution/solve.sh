#!/bin/bash
# The oracle's fix: 100 cents to the unit, and one formatter for the total.
set -euo pipefail
sed -i 's/round(float(text) \* 10)/round(float(text) * 100)/' /app/money.py
sed -i 's|return f"{total // 100}.{total % 100}"|return money.to_text(total)|' /app/cart.py
