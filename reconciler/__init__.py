"""reconciler: eHerkenning access as code (validate, plan, apply against a beheer backend)."""

__version__ = "0.1.0"
