"""The exit codes scripts rely on (INTERFACE.md), declared once: a module of their own, so the group in `cli.main`
can use them without loading the pipeline before a command is chosen."""

#: 0 ok, nothing to do or in sync; 1 an error, invalid or refused; 2 changes pending (plan, drift).
EXIT_OK, EXIT_ERROR, EXIT_PENDING = 0, 1, 2
