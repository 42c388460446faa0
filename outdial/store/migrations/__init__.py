"""Alembic migrations of the outdial schema; run with ``outdial db upgrade``."""
