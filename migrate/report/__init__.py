"""Everything a person or a program reads on stdout: `text` tables and lines, `documents` for --json.

Nothing else in the package prints; logs go to stderr through logging.
"""
