"""``python -m tomocam`` runs the command-line interface."""

from tomocam.cli.main import main

main()
