"""report namespace."""
