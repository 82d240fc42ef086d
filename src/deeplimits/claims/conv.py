"""Claims of conv (being written)."""
