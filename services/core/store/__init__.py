"""Postgres persistence of the domain: SQL lives here and nowhere else."""
