"""psycopg2, and only here: connecting, waiting for the server, the session and its run lock.

Knows no plan, no files and no Settings: it takes a `Target` (where and how to connect).
`connection` connects and waits (a `Session` each time), `run_lock` holds the run lock, `sql`
holds the quoting and transaction helpers every writer uses, `embedded` the local server.
"""
