"""migrate: a two-track PostgreSQL schema-migration tool for plain SQL files."""

__version__ = "0.1.0"
