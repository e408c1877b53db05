"""The tool's own tables: the two history tables and the attempt log, owned here alone.

`tables` creates or upgrades them and reads them; `recorder.Recorder`, one per run, writes
every row (applied, failed, attempts, adopted checksums, repair, baseline).
"""
