"""`python -m export.report` (see `export.report.command`)."""

from export.report.command import main

main()
