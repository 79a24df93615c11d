#!/bin/bash
# The oracle's fix: lo is the floor, hi the ceiling.
set -euo pipefail
sed -i 's/return max(hi, min(value, lo))/return max(lo, min(value, hi))/' /app/geometry.py
