"""The read side's operations: the feed pipeline, post and user reads over the readers, cursors,
ranking and the read engines."""
