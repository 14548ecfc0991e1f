"""``feedstream model``: train, evaluate and inspect the LightGBM feed ranker (``ranker``, the default)
and the moderation spam model (``spam``) artifacts; measure the packaged offensive-text model
(``offensive``) on a labelled corpus."""

from __future__ import annotations

import json
from pathlib import Path

import typer

NAME = "model"
app = typer.Typer(help="The LightGBM feed ranker and spam model: train, evaluate, show the manifest; "
                       "the offensive-text model: evaluate on a labelled corpus.",
                  no_args_is_help=True)
WHICH = typer.Argument("ranker", help="ranker (feed ranking), spam or offensive (moderation; offensive: evaluate only)")


@app.command()
def train(
    which: str = WHICH,
    users: int = typer.Option(400, help="synthetic world size (core.workload graph)"),
    seed: int = typer.Option(7, help="seed of the graph, posts, sessions and labels"),
    sessions_per_reader: int = typer.Option(3, help="feed sessions per reader"),
    trees: int = typer.Option(50, help="boosting rounds"),
    leaves: int = typer.Option(15, help="leaves per tree"),
    version: str = typer.Option("v1", help="artifact version (the ranker reports lightgbm-<version>)"),
    out: Path = typer.Option(None, help="artifact directory (default: models/artifacts/ranker)"),
) -> None:
    """Generate seeded synthetic data, fit the model, write model.txt + manifest.json."""
    if which == "offensive":
        typer.echo("error: the offensive model ships trained inside alt-profanity-check; measure it with "
                   "`feedstream model evaluate offensive --corpus FILE`", err=True)
        raise typer.Exit(2)
    if which == "spam":
        return _train_spam(out)
    from models.data import SynthConfig
    from models.ranker import ARTIFACT_DIR, write_artifact
    from models.train import train as fit

    booster, manifest = fit(SynthConfig(users=users, seed=seed, sessions_per_reader=sessions_per_reader),
                            trees, leaves, version)
    path = write_artifact(out or ARTIFACT_DIR, booster, manifest)
    typer.echo(f"artifact: {path}")
    for name, v in manifest["metrics"]["ndcg@10_test"].items():
        typer.echo(f"  NDCG@10 {name:<24} {v:.4f}")


@app.command()
def evaluate(
    which: str = WHICH,
    artifact: Path = typer.Option(None, help="artifact directory (default: the committed one)"),
    bench: bool = typer.Option(False, "--bench", help="also time pages of 20 and 100 items vs the heuristic"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    corpus: Path = typer.Option(None, help="offensive: a labelled corpus, e.g. OLID's olid-training-v1.0.tsv "
                                "(columns tweet|text and subtask_a|label; docs/models.md)"),
) -> None:
    """Ranker: NDCG@10 vs heuristic, chronological and random. Spam: precision, recall, PR-AUC, confusion, PR curve.
    Offensive: the same at the manifest's LIMIT threshold on --corpus, plus the review band and a word-list baseline."""
    if which == "offensive":
        return _evaluate_offensive(corpus, artifact)
    if which == "spam":
        return _evaluate_spam(artifact)
    from models.evaluate import format_result, run

    result = run(artifact, bench)
    typer.echo(json.dumps(result, indent=2) if as_json else format_result(result))


@app.command()
def info(artifact: Path = typer.Option(None, help="artifact directory (default: the committed one)")) -> None:
    """Print the artifact's manifest after checking it against this code's feature list."""
    from models.ranker import ArtifactError, load_ranker

    try:
        ranker = load_ranker(artifact)
    except ArtifactError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"ranker: {ranker.name}")
    typer.echo(json.dumps(ranker.manifest, indent=2, sort_keys=True))


def _train_spam(out: Path | None) -> None:
    from models.moderation.spam import SPAM_DIR
    from models.moderation.spam_data import SpamDataConfig
    from models.moderation.spam_train import train as fit
    from models.moderation.spam_train import write

    booster, manifest, _ = fit(SpamDataConfig())
    typer.echo(f"artifact: {write(out or SPAM_DIR, booster, manifest)}")
    typer.echo(json.dumps(manifest["metrics"]["test"], indent=2))


def _evaluate_spam(artifact: Path | None) -> None:
    from models.moderation.spam_data import SpamDataConfig
    from models.moderation.spam_train import evaluate as run

    png = Path("docs/models-spam-pr.png") if artifact is None else artifact / "pr.png"
    typer.echo(json.dumps(run(artifact, SpamDataConfig(), png), indent=2))
    typer.echo(f"PR curve: {png}")


def _evaluate_offensive(corpus: Path | None, artifact: Path | None) -> None:
    from models.moderation.offensive_eval import CorpusError
    from models.moderation.offensive_eval import evaluate as run

    if corpus is None:
        typer.echo("error: --corpus FILE is required: a labelled corpus such as OLID v1.0's "
                   "olid-training-v1.0.tsv (docs/models.md, 'Offensive-text model')", err=True)
        raise typer.Exit(2)
    png = Path("docs/models-offensive-pr.png") if artifact is None else artifact / "pr.png"
    typer.echo(f"scoring {corpus} with the packaged model ...", err=True)
    try:
        result = run(corpus, artifact, png)
    except CorpusError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(result, indent=2))
    typer.echo(f"PR curve: {png}")
