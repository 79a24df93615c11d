#!/bin/bash
# The oracle's fix: keep every word.
set -euo pipefail
sed -i 's/words\[len(words) - 1 : 0 : -1\]/reversed(words)/' /app/textutil.py
