"""``python -m swerl`` is the ``swerl`` command."""

from swerl.cli import main

main()
