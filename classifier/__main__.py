"""``python -m classifier --data-dir DIR {catalog import|classify|classifier ...}``."""

from classifier.cli import main

raise SystemExit(main())
