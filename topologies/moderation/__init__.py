"""Moderation topology: posts and comments -> rules and models -> verdicts; moderator decisions override."""
