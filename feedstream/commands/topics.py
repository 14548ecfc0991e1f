"""``feedstream topics``: apply the topic catalog to Kafka, list catalog vs broker, register schemas."""

from __future__ import annotations

from typing import Annotated

import typer

NAME = "topics"
app = typer.Typer(
    help="Create, list and describe the catalog's Kafka topics and register their Avro schemas.",
    no_args_is_help=True,
)

Bootstrap = Annotated[str | None, typer.Option(help="Kafka bootstrap servers (default: settings).")]
Registry = Annotated[str | None, typer.Option(help="Schema registry URL (default: settings).")]


def _retention(ms: str | int | None) -> str:
    if ms is None:
        return "-"
    ms = int(ms)
    if ms < 0:
        return "forever"
    return f"{ms // 86_400_000}d" if ms % 86_400_000 == 0 else f"{ms}ms"


@app.command("apply")
def apply(
    bootstrap: Bootstrap = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would change.")] = False,
    schemas: Annotated[bool, typer.Option("--schemas", help="Also register every schema.")] = False,
    registry_url: Registry = None,
) -> None:
    """Create missing topics, update cleanup.policy/retention.ms, grow partitions; print each change."""
    from streams.admin import apply_topics, register_all_schemas
    from streams.errors import StreamsError

    try:
        changes = apply_topics(bootstrap=bootstrap, dry_run=dry_run)
        prefix = "would have " if dry_run else ""
        for change in changes:
            typer.echo(f"{prefix if change.applied else ''}{change}")
        if not any(c.applied for c in changes):
            typer.echo("no changes")
        if schemas:
            _print_registrations(register_all_schemas(registry_url))
    except StreamsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _print_registrations(results: list) -> None:
    created = [r for r in results if r.created]
    for r in created:
        typer.echo(str(r))
    typer.echo(f"schemas: {len(created)} registered, {len(results) - len(created)} unchanged")


@app.command("register")
def register(registry_url: Registry = None) -> None:
    """Register every catalog schema under its <topic>-<record> subject (idempotent)."""
    from streams.admin import register_all_schemas
    from streams.errors import StreamsError

    try:
        _print_registrations(register_all_schemas(registry_url))
    except StreamsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command("list")
def list_(bootstrap: Bootstrap = None, all_topics: Annotated[bool, typer.Option(
        "--all", help="Also show broker topics that are not in the catalog.")] = False) -> None:
    """Show every catalog topic next to what the broker has."""
    from core.settings import get_settings
    from streams.admin import admin_client, broker_state, plan_changes
    from streams.catalog import ALL_TOPICS, BY_NAME

    settings = get_settings()
    admin = admin_client(settings, bootstrap)
    broker = broker_state(admin, None if all_topics else [t.name for t in ALL_TOPICS])
    rows = [("TOPIC", "KEY", "CATALOG", "BROKER", "STATUS")]
    for topic in (t.resolved(settings) for t in ALL_TOPICS):
        state = broker.get(topic.name)
        want = f"{topic.partitions}p r{topic.replication} {topic.cleanup_policy} {_retention(topic.retention_ms)}"
        have = "-" if state is None else (
            f"{state.partitions}p r{state.replication} {state.configs.get('cleanup.policy')} "
            f"{_retention(state.configs.get('retention.ms'))}")
        drift = plan_changes([topic], broker)
        status = "missing" if state is None else "ok" if not drift else "drift: " + ", ".join(c.kind for c in drift)
        rows.append((topic.name, topic.key_field, want, have, status))
    for name, state in sorted(broker.items()):
        if name not in BY_NAME:
            rows.append((name, "-", "-", f"{state.partitions}p r{state.replication}", "not in catalog"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


@app.command("describe")
def describe(topic: Annotated[str, typer.Argument(help="a catalog topic, e.g. posts.v1")]) -> None:
    """Show a topic: key, partitions, retention, record types with their schemas, and its newest record decoded."""
    import json

    from core.settings import get_settings
    from ops.topic_info import describe as info_of
    from streams.catalog import BY_NAME

    if topic not in BY_NAME:
        typer.echo(f"error: {topic!r} is not in the catalog; one of: {', '.join(sorted(BY_NAME))}", err=True)
        raise typer.Exit(2)
    info = info_of(get_settings(), topic)
    t = info.topic
    typer.echo(f"{t.name}: {t.description}")
    typer.echo(f"  key:         {t.key_field}" + "".join(f", {r}: {f}" for r, f in t.key_overrides))
    have = "missing on the broker" if info.broker_partitions is None else f"{info.broker_partitions} on the broker"
    typer.echo(f"  partitions:  {t.partitions} in the catalog, {have}")
    typer.echo(f"  cleanup:     {t.cleanup_policy}, retention {_retention(t.retention_ms)}")
    if info.end_offsets:
        typer.echo("  end offsets: " + ", ".join(f"p{p}={o}" for p, o in sorted(info.end_offsets.items())))
    typer.echo("  records:")
    for record, fields in info.records.items():
        typer.echo(f"    {record}")
        for name, kind in fields:
            typer.echo(f"      {name}: {kind}")
    if info.sample is None:
        typer.echo("  sample:      (no records yet)")
    else:
        p, o = info.sample_at or (0, 0)
        typer.echo(f"  sample:      {info.sample.name} at partition {p}, offset {o}")
        typer.echo("    " + json.dumps(info.sample.value, default=str, indent=2).replace("\n", "\n    "))
