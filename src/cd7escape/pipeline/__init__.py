"""pipeline namespace."""
