#!/bin/bash
# The oracle's fix: the documented default.
set -euo pipefail
sed -i 's/"timeout": 3,/"timeout": 30,/' /app/config.py
