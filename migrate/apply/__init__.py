"""Executing a plan: each pending version applied and recorded, or recorded as failed.

`run` applies a run's versions in order and reports each once durable, `runner` applies one
version exactly once (one transaction, or statement by statement) with lock-timeout retries,
`file_session` gives every file a session as fresh as psql's, `psql` hands files only psql can
run to psql, and `heartbeat` says "still running" while a statement takes long.
"""
