"""Alembic migrations of the database schema (run by `concierge db upgrade` and at start)."""
