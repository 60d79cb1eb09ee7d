"""Read-only reports on the backend's actual state, for auditors and practitioners (`reconciler report`)."""
