"""`python -m stop_tui`: the command line."""

from stop_tui.cli import main

raise SystemExit(main())
