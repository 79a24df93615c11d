#!/bin/bash
# The oracle's fix: an empty list has no mean.
set -euo pipefail
python3 - <<'EOF'
from pathlib import Path

path = Path("/app/stats.py")
old = "    return sum(values) / len(values)\n"
new = "    if not values:\n        return None\n" + old
path.write_text(path.read_text().replace(old, new))
EOF
