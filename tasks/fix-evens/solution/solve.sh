#!/bin/bash
# The oracle's fix: include the upper bound.
set -euo pipefail
sed -i 's/range(lo, hi)/range(lo, hi + 1)/' /app/seq.py
