"""reconciler: eHerkenning access as code (validate, plan, apply against a beheer backend)."""

import sys

__version__ = "0.1.0"

# httpx's package import loads its own command line (`httpx._main`), and with it click's, rich's and pygments'
# terminal stacks (a third of reconciler's start-up on a 2-core machine), only to offer `httpx.main`, which
# reconciler never calls. A None entry makes that optional import fail the way httpx expects (it then defines
# a stub `main`); a process that imported httpx first keeps its real one.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
