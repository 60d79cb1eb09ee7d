"""Carrying a plan out against the backend: the executor, its report, the audit log and the saved plan."""
