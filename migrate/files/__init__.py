"""Step 1, the disk: migration files found, named, read, hashed and split into statements.

Never connects to a database. `sqlfiles` owns the naming rule, the order and the checksum,
`statements` what a file means to PostgreSQL (pglast), `authoring` the `new` command's template.
"""
