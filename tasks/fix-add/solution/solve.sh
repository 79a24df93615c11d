#!/bin/bash
# The oracle's fix: add must add.
set -euo pipefail
sed -i 's/return a - b/return a + b/' /app/calc.py
