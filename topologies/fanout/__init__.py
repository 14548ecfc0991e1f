"""Fan-out topology: posts.v1 -> author index, post content, home timelines (hybrid push/pull)."""
