"""Errors of the local stack: each says what went wrong and what to do."""


class LocalStackError(RuntimeError):
    """Root error of :mod:`ops.local`; its message is meant for the user as-is."""
