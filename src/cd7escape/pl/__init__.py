"""pl namespace."""
