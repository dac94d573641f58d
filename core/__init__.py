"""Low-level shared code with no dependency on the other packages: the typed records of every
hop and their codec (:mod:`core.records`)."""
