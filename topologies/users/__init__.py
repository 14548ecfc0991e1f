"""Users topology: users.v1 -> profiles; engagements.v1 comments -> the threaded comments view."""
