"""``python -m workflows`` runs the ``audiomill`` command line."""

from workflows.cli import main

main()
