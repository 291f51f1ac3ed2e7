"""``python -m detector`` is the ``detector`` command."""

from detector.cli import main

raise SystemExit(main())
