"""``python -m localqueue`` runs the command line."""

from localqueue.cli import main

main()
