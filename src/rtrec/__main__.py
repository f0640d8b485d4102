"""``python -m rtrec`` runs the command line."""

from rtrec.cli import main

main()
