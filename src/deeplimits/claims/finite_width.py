"""Claims of finite_width (being written)."""
