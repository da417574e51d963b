"""`python -m bridge.cli` runs the mless command."""

from bridge.cli import main

main()
