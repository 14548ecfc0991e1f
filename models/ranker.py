"""The LightGBM feed ranker behind ``algorithm=ranked``: a versioned artifact, one predict per page.

An artifact is a directory holding ``model.txt`` (``Booster.model_to_string()``) and
``manifest.json`` (version, feature names in order, training seed and size, metrics, lightgbm
version, created_at). :func:`load_ranker` refuses a manifest whose features differ from
:data:`models.features.FEATURE_NAMES`. :func:`select_ranker` picks the read API's ranker from
``FEEDSTREAM_RANKER`` (``auto`` | ``lightgbm`` | ``heuristic``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import redis as _redis

from models.features import FEATURE_NAMES, AuthorContext, page_matrix
from stores.graph import k_followers, k_friends

log = logging.getLogger(__name__)
ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts" / "ranker"
MODEL_FILE, MANIFEST_FILE = "model.txt", "manifest.json"
ContextFn = Callable[[str, list[str]], Mapping[str, AuthorContext]]
RANKER_CHOICES = ("auto", "lightgbm", "heuristic")


class ArtifactError(Exception):
    """A ranker artifact is missing, corrupt or incompatible with this code's features."""


def check_features(manifest: Mapping[str, Any]) -> None:
    """Raise :class:`ArtifactError` naming the difference if the manifest's features are not ours."""
    theirs = list(manifest.get("features") or [])
    ours = list(FEATURE_NAMES)
    if theirs == ours:
        return
    missing = [f for f in ours if f not in theirs]
    extra = [f for f in theirs if f not in ours]
    detail = f"missing {missing}, unexpected {extra}" if missing or extra else "same names in another order"
    raise ArtifactError(f"artifact feature list does not match models.features.FEATURE_NAMES: {detail} "
                        f"(artifact {theirs}, code {ours}); retrain with `feedstream model train`")


def write_artifact(directory: Path, booster: lgb.Booster, manifest: Mapping[str, Any]) -> Path:
    """Write ``model.txt`` and ``manifest.json`` (with the model's sha256) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    text = booster.model_to_string()
    (directory / MODEL_FILE).write_text(text)
    full = {**manifest, "model_file": MODEL_FILE, "model_sha256": hashlib.sha256(text.encode()).hexdigest()}
    (directory / MANIFEST_FILE).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    return directory


def read_manifest(directory: Path | None = None) -> dict[str, Any]:
    """The manifest of the artifact in ``directory`` (default: the committed one)."""
    path = (directory or ARTIFACT_DIR) / MANIFEST_FILE
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise ArtifactError(f"no ranker artifact at {path.parent}; run `feedstream model train`") from exc
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"corrupt manifest {path}: {exc}") from exc


class LightGBMRanker:
    """Implements :class:`serving.feed.ranker.Ranker` with a LightGBM booster (one predict per page)."""

    def __init__(self, booster: lgb.Booster, manifest: Mapping[str, Any], context: ContextFn | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        check_features(manifest)
        if booster.num_feature() != len(FEATURE_NAMES):
            raise ArtifactError(f"model expects {booster.num_feature()} features, code has {len(FEATURE_NAMES)}")
        self.booster, self.manifest, self.context, self.clock = booster, dict(manifest), context, clock
        self._name = f"lightgbm-{manifest['version']}"

    @property
    def name(self) -> str:
        """``lightgbm-<artifact version>``, reported in feed responses."""
        return self._name

    @property
    def wants_context(self) -> bool:
        """Whether scores read author context (a caller that already has it passes it to :meth:`scores`)."""
        return self.context is not None

    def features(self, reader: str, items: Sequence[Mapping[str, Any]],
                 context: Mapping[str, AuthorContext] | None = None) -> np.ndarray:
        """The page's feature matrix: author ``context`` as given, else fetched once per page if a
        context source is set."""
        if context is None and self.context:
            context = self.context(reader, list(dict.fromkeys(str(it["author_id"]) for it in items)))
        return page_matrix(items, int(self.clock() * 1000), context)

    def scores(self, reader: str, items: Sequence[Mapping[str, Any]],
               context: Mapping[str, AuthorContext] | None = None) -> list[float]:
        """One score per item, in input order (``context``: the authors' context, read by the caller)."""
        if not items:
            return []
        out = self.booster.predict(self.features(reader, items, context), num_threads=1)
        return [float(s) for s in np.asarray(out).ravel()]


def load_ranker(directory: Path | None = None, context: ContextFn | None = None) -> LightGBMRanker:
    """Load and check the artifact in ``directory`` (default: the committed one)."""
    d = directory or ARTIFACT_DIR
    manifest = read_manifest(d)
    check_features(manifest)
    path = d / str(manifest.get("model_file", MODEL_FILE))
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ArtifactError(f"manifest names {path}, which does not exist") from exc
    if manifest.get("model_sha256") and hashlib.sha256(text.encode()).hexdigest() != manifest["model_sha256"]:
        raise ArtifactError(f"{path} does not match the sha256 in its manifest")
    try:
        booster = lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as exc:
        raise ArtifactError(f"{path} is not a LightGBM model: {exc}") from exc
    return LightGBMRanker(booster, manifest, context)


def redis_author_context(r: _redis.Redis) -> ContextFn:
    """Author follower counts and friendship with the reader, one Redis round trip per page."""
    def fetch(reader: str, authors: list[str]) -> dict[str, AuthorContext]:
        if not authors:
            return {}
        p = r.pipeline(transaction=False)
        for a in authors:
            p.scard(k_followers(a))
        p.smismember(k_friends(reader), authors)
        *sizes, friends = p.execute()
        return {a: AuthorContext(int(n), bool(f)) for a, n, f in zip(authors, sizes, friends)}
    return fetch


def select_ranker(choice: str, r: _redis.Redis, heuristic: Any) -> Any:
    """The read API's ranker: ``heuristic``, ``lightgbm`` (must load) or ``auto`` (LightGBM if it loads)."""
    if choice not in RANKER_CHOICES:
        raise ValueError(f"FEEDSTREAM_RANKER={choice!r}; choose from {list(RANKER_CHOICES)}")
    if choice == "heuristic":
        return heuristic
    try:
        return load_ranker(context=redis_author_context(r))
    except ArtifactError as exc:
        if choice == "lightgbm":
            raise
        log.warning("LightGBM ranker unavailable, using %s: %s", getattr(heuristic, "name", heuristic), exc)
        return heuristic
