"""Social-graph topology: graph.v1 -> follower/following/friend/block sets, negative sets, back-fill."""
