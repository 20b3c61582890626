"""`python -m mailhaul`."""

from mailhaul.cli import main

main()
