"""``python -m mire`` runs the ``mire`` command."""

from mire.cli import main

main()
