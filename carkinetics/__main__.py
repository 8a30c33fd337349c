"""``python -m carkinetics`` runs the command line."""

from carkinetics.cli.main import main

main()
