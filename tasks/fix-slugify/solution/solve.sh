#!/bin/bash
# The oracle's fix: strip the hyphens at both ends.
set -euo pipefail
sed -i 's/title.lower())$/title.lower()).strip("-")/' /app/slug.py
