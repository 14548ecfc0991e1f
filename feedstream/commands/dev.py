"""``feedstream dev``: helpers for local development (e.g. minting API tokens)."""

from __future__ import annotations

from typing import Annotated

import typer

NAME = "dev"
app = typer.Typer(help="Local development helpers.", no_args_is_help=True)


@app.command()
def token(
    user: str = typer.Argument(..., help="user id to put in the token's subject"),
    ttl: int = typer.Option(0, help="lifetime in seconds (0: FEEDSTREAM_JWT_TTL_S, default 3600)"),
    role: Annotated[list[str] | None, typer.Option(help="a role claim, e.g. --role moderator (repeatable)")] = None,
) -> None:
    """Print a bearer token for USER, signed with FEEDSTREAM_JWT_SECRET, for calling the API."""
    from core.settings import get_settings
    from serving.auth import mint_token

    typer.echo(mint_token(user, get_settings(), ttl or None, roles=tuple(role or ())))
