"""``python -m bordergate``: the same command as the ``bordergate`` script."""

from bordergate.cli import main

main()
