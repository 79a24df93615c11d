#!/bin/bash
# Harbor's verifier: run the hidden tests against /app and write the reward (1 pass, 0 fail).
mkdir -p /logs/verifier
if cd /app && PYTHONPATH=/app python3 -B -m unittest discover -s /tests -p 'test_*.py' -v; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
