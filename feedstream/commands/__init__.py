"""CLI command groups. Each module here exposes ``app: typer.Typer`` and ``NAME: str``;
:mod:`feedstream.cli` mounts every one it finds, so adding a group touches no shared file."""
