"""`reconciler import`: write an organisation's YAML from what already exists, so a beheerder who clicked
everything together in the Beheermodule starts managing it as code from the truth, not from memory.

Two sources, one result: `backend` reads the beheer backend (everything it lists: people, authorisations,
chain authorisations), `export` reads the Beheermodule's CSV/XLSX download of the users overview (people
only). Both build an `ImportedOrg` (`model`), which `render` writes as YAML with comments where a state is
transient or something could not be known.
"""
