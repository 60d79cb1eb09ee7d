"""`reconciler conformance`: a kit any beheer backend can run to prove, over HTTP, that it keeps the
Beheermodule's rules (R1..R20), the authorisation boundaries, idempotency and If-Match (docs/conformance.md).

`probes` holds one small probe per rule and edge, `runner` runs them against a backend in throw-away
organisations it creates through a control hook (`control`), `report` renders the pass/fail table."""
