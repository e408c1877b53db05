"""Proving migration files good, before or beside a run.

`preflight` parses and lints every pending file before anything runs, `lint` and
`lint_rules` check files for idempotency, schema isolation and safety, `verify` runs every
file again (right after its first run, and the whole set once more) on a shadow database,
`shadow` builds that database like the target's platform on a server where that is allowed,
`reach` reads from SQL what it reaches outside its schema (cluster-wide statements, roles,
platform attachments), `catalog` takes the catalog and data fingerprints verify compares.
"""
