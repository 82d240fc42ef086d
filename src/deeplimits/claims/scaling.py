"""Claims of scaling (being written)."""
