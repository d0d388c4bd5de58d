"""`python -m narrows` is the same as the `narrows` console script."""

from narrows.cli import main

raise SystemExit(main())
