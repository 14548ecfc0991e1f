"""Media processing topology (issue 19)."""
