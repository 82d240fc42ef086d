"""Claims of backward (being written)."""
