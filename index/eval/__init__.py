"""Small committed evaluation files (labels only; the texts stay in ../shared/data)."""
