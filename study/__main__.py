"""Entry point of `python -m study`."""

from study.cli import main

raise SystemExit(main())
