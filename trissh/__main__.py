"""``python -m trissh``: the ``trissh`` command."""

from ._cli import main

raise SystemExit(main())
