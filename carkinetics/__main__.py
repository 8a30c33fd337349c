"""``python -m carkinetics`` runs the command line."""

from .cli import main

main()
