"""The feed read pipeline: cursors, ranking, hydration, visibility and the read engines."""
