"""Keeping personal data only as long as it is needed (retention and purge)."""
