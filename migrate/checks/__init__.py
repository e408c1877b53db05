"""Proving migration files good, before or beside a run.

`preflight` parses and lints every pending file before anything runs, `lint` and
`lint_rules` check files for idempotency, schema isolation and safety, `verify` applies
every file twice on a scratch database, `catalog` takes the fingerprints it compares.
"""
