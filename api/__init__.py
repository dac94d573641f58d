"""The HTTP API (FastAPI): sites, meters, monthly closes with their quality, checks, states,
snapshots, restatements, bills, denominators, the audit log and exports (issue 12)."""
