"""tl namespace."""
