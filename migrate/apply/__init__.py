"""Executing a plan: each pending version applied and recorded, or recorded as failed.

`runner` applies one version (one transaction, or statement by statement) with lock-timeout
retries, `batch` runs several in one transaction, `psql` hands files only psql can run to
psql, and `heartbeat` says "still running" while a statement takes long.
"""
