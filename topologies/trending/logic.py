"""Pure trending logic: HOP window assignment, aggregation, emit/late policy, scoring, viral, top-K.

No framework imports: the PyFlink job (``topologies.trending.job``) calls these functions, and
:func:`simulate` replays the same rules without a broker (a reference model for tests/benchmarks).

Window semantics follow Flink's ``SlidingEventTimeWindows`` exactly: windows are ``[start, end)``
with ``start`` a multiple of ``slide`` (offset 0); a window fires when the watermark reaches
``end - 1``; an element is late-but-accepted while ``end - 1 + lateness > watermark`` holds for
one of its windows, and goes to the side output when it holds for none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from core.clock import millis

HASHTAGS = "hashtags"
POSTS = "posts"
VIRAL_PREFIX = "viral-"
#: Row kind of a moderation verdict or visibility marker inside the job (never windowed; see
#: :mod:`topologies.trending.moderation`).
MODERATION = "moderation"

#: Weight of each engagement in a post's score; removals undo their additions.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "Liked": 1.0, "Unliked": -1.0,
    "CommentAdded": 3.0, "CommentDeleted": -3.0,
    "Shared": 5.0,
    "ReactionAdded": 1.0, "ReactionRemoved": -1.0,
}

_UNITS = {"ms": 1, "s": 1_000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration(text: str) -> int:
    """Parse ``"60s"``, ``"1m"``, ``"1h"``, ``"250ms"`` into milliseconds."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|min|m|h|d)\s*", text)
    if not m:
        raise ValueError(f"bad duration {text!r} (expected e.g. 250ms, 60s, 1m, 1h)")
    return int(m.group(1)) * _UNITS[m.group(2)]


def format_duration(ms: int) -> str:
    """Format milliseconds with the largest exact unit, e.g. 3600000 -> ``"1h"``."""
    for unit in ("d", "h", "m", "s"):
        if ms % _UNITS[unit] == 0 and ms >= _UNITS[unit]:
            return f"{ms // _UNITS[unit]}{unit}"
    return f"{ms}ms"


class Window(NamedTuple):
    """A half-open event-time window ``[start, end)`` in epoch milliseconds."""

    start: int
    end: int

    @property
    def max_timestamp(self) -> int:
        """The last millisecond inside the window (when it fires)."""
        return self.end - 1


@dataclass(frozen=True)
class WindowSpec:
    """A HOP window: size, slide, allowed lateness and the watermark's out-of-orderness bound."""

    size_ms: int
    slide_ms: int
    lateness_ms: int = 0
    out_of_orderness_ms: int = 0

    def __post_init__(self) -> None:
        if self.size_ms <= 0 or self.slide_ms <= 0:
            raise ValueError("window size and slide must be positive")
        if self.size_ms % self.slide_ms:
            raise ValueError(f"size {self.size_ms} ms is not a multiple of slide {self.slide_ms} ms")
        if self.lateness_ms < 0 or self.out_of_orderness_ms < 0:
            raise ValueError("lateness and out-of-orderness must be >= 0")

    @property
    def label(self) -> str:
        """Short window name used in scopes, e.g. ``"1h"`` or ``"60s"`` (size only)."""
        return format_duration(self.size_ms)

    @classmethod
    def parse(cls, text: str) -> WindowSpec:
        """Parse ``"SIZE/SLIDE[/LATENESS[/OUT_OF_ORDERNESS]]"``, e.g. ``"1h/1m/5m/10s"``."""
        parts = [parse_duration(p) for p in text.split("/")]
        if not 2 <= len(parts) <= 4:
            raise ValueError(f"bad window {text!r} (expected SIZE/SLIDE[/LATENESS[/OOO]])")
        return cls(*parts)

    def assign(self, ts: int) -> list[Window]:
        """Every window containing ``ts``, latest first (Flink's sliding assignment, offset 0)."""
        last_start = ts - (ts % self.slide_ms)
        return [Window(s, s + self.size_ms)
                for s in range(last_start, ts - self.size_ms, -self.slide_ms)]

    def fired(self, window: Window, watermark: int) -> bool:
        """Whether the watermark has passed the window's end (its on-time result is out)."""
        return watermark >= window.max_timestamp

    def expired(self, window: Window, watermark: int) -> bool:
        """Whether the window's allowed lateness is over (its state is gone)."""
        return window.max_timestamp + self.lateness_ms <= watermark

    def classify(self, ts: int, watermark: int) -> Literal["on_time", "late_update", "too_late"]:
        """Emit/late policy for an element at ``ts`` arriving when the watermark is ``watermark``."""
        live = [w for w in self.assign(ts) if not self.expired(w, watermark)]
        if not live:
            return "too_late"
        return "late_update" if any(self.fired(w, watermark) for w in live) else "on_time"


def dedup_horizon_ms(specs: Iterable[WindowSpec]) -> int:
    """How long (event time) an event id must be remembered to count it once in every window.

    An event at ``ts`` is in windows ending by ``ts + size``; they take late updates until the
    watermark (``max event time - ooo``) passes ``end - 1 + lateness``. A re-delivery after that is
    too late for all of them (dead-lettered, never counted), so the id can be forgotten then.
    """
    return max(s.size_ms + s.lateness_ms + s.out_of_orderness_ms for s in specs)


def dedup_key(event_id: str, kind: str, item: str) -> str:
    """The dedup key of one contribution: an event counts once per item it contributes to."""
    return f"{event_id}\x1f{kind}\x1f{item}"


DEMO_WINDOW = WindowSpec(60_000, 10_000, lateness_ms=30_000, out_of_orderness_ms=2_000)
DEFAULT_WINDOW = WindowSpec(3_600_000, 60_000, lateness_ms=300_000, out_of_orderness_ms=10_000)


#: A partition clock's value while some partition that holds it back has no record yet.
NEVER = -(2**63)


@dataclass
class PartitionClock:
    """Event-time progress of one topic's Kafka partitions, for a watermark per partition.

    ``observe`` returns the minimum, over the partitions that are not idle, of each partition's
    greatest event time so far. A bounded-out-of-orderness watermark over these values
    (``max - ooo - 1``) is then the minimum of per-partition watermarks (each ``max_p - ooo - 1``),
    which is what Flink's Kafka source does per split when it assigns the timestamps itself: a
    partition read far ahead of another (a replay from offset 0) cannot push the other's on-time
    events behind the watermark. The partitions known at the start (``partitions``: 0..n-1) hold the
    clock at :data:`NEVER` until their first record; one with no record for ``idle_ms`` (a wall
    clock, as Flink's idleness) stops holding it back until its next record; None: never idle.
    A partition not known at the start counts from its first record.
    """

    partitions: int = 0
    idle_ms: float | None = None
    now_ms: float = 0.0
    maxima: dict[int, int] = field(default_factory=dict)
    seen: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for p in range(self.partitions):
            self.maxima.setdefault(p, NEVER)
            self.seen.setdefault(p, self.now_ms)

    def observe(self, partition: int, ts: int, now_ms: float) -> int:
        """Record ``partition``'s event at ``ts`` (read at wall-clock ``now_ms``); return the clock."""
        maxima, seen = self.maxima, self.seen
        if ts > maxima.get(partition, NEVER):
            maxima[partition] = ts
        seen[partition] = now_ms
        if not self.idle_ms:
            return min(maxima.values())
        cutoff = now_ms - self.idle_ms
        return min(v for p, v in maxima.items() if seen[p] > cutoff)


class Contribution(NamedTuple):
    """One event's contribution to one item: ``(kind, item, ts, weight, count)``."""

    kind: str
    item: str
    ts: int
    weight: float
    count: int


def contributions(record: str, value: Mapping[str, Any],
                  weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> list[Contribution]:
    """Map a decoded event to what it adds: one per distinct hashtag of a new post, or one per engagement."""
    ts = millis(value["occurred_at"])
    if record == "PostCreated":
        tags = dict.fromkeys(t.lower().lstrip("#") for t in value.get("hashtags", ()) if t)
        return [Contribution(HASHTAGS, t, ts, 1.0, 1) for t in tags if t]
    weight = weights.get(record)
    if weight is None:
        return []
    return [Contribution(POSTS, str(value["post_id"]), ts, float(weight), 1 if weight > 0 else -1)]


def contributor(record: str, value: Mapping[str, Any]) -> list[str]:
    """The user who must be registered for ``record`` to count: a post's author, an engagement's user."""
    if record == "PostCreated":
        return [value["author_id"]]
    user = value.get("user_id")
    return [user] if user else []


# -- aggregation: create / add over (count, weight) ------------------------------------------------
Acc = tuple[int, float]


def agg_create() -> Acc:
    """An empty accumulator: no events, no weight."""
    return (0, 0.0)


def agg_add(acc: Acc, count: int, weight: float) -> Acc:
    """Add one contribution."""
    return (acc[0] + count, acc[1] + weight)


# -- scoring ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ViralPolicy:
    """Observed-vs-expected viral detection (Mastodon trends' spirit) plus a Poisson-floored z-score."""

    baseline_windows: int = 6
    threshold: float = 5.0
    min_zscore: float = 2.0


def rate_per_hour(weight: float, spec: WindowSpec) -> float:
    """Weighted events per hour in a window: the velocity score."""
    return weight * 3_600_000 / spec.size_ms


def baseline(history: Mapping[int, float], window_end: int, spec: WindowSpec, n: int) -> list[float]:
    """The item's weight in the ``n`` non-overlapping windows before ``window_end`` (absent = 0)."""
    return [float(history.get(window_end - k * spec.size_ms, 0.0)) for k in range(1, n + 1)]


def zscore(observed: float, past: Sequence[float]) -> float:
    """``(observed - mean) / std`` with the std floored at ``sqrt(max(mean, 1))`` (Poisson noise)."""
    mean = sum(past) / len(past) if past else 0.0
    var = sum((x - mean) ** 2 for x in past) / len(past) if past else 0.0
    return (observed - mean) / math.sqrt(max(var, mean, 1.0))


def viral_score(observed: float, past: Sequence[float], threshold: float) -> float:
    """Mastodon-style score: ``(observed - expected)^2 / expected`` when above ``max(mean, threshold)``."""
    expected = max(sum(past) / len(past) if past else 0.0, threshold)
    return (observed - expected) ** 2 / expected if observed > expected else 0.0


class Scored(NamedTuple):
    """An item's result for one window, ready to rank."""

    kind: str
    item: str
    start: int
    end: int
    count: int
    weight: float
    score: float
    velocity: float
    zscore: float
    viral: float


def score(kind: str, item: str, window: Window, acc: Acc, history: Mapping[int, float],
          spec: WindowSpec, policy: ViralPolicy = ViralPolicy()) -> Scored:
    """Score an item's window against its own history (``window_end -> weight``)."""
    count, weight = acc
    past = baseline(history, window.end, spec, policy.baseline_windows)
    z = zscore(weight, past)
    viral = viral_score(weight, past, policy.threshold) if z >= policy.min_zscore else 0.0
    return Scored(kind, item, window.start, window.end, count, weight, rate_per_hour(weight, spec),
                  weight - past[0] if past else weight, z, viral)


# -- top-K -------------------------------------------------------------------------------------------
class TopK(NamedTuple):
    """A scope's ranked list for one window (possibly empty: nothing trends there now)."""

    scope: str
    window_start: int
    window_end: int
    entries: list[Ranked]


class Ranked(NamedTuple):
    """One ranked entry of a scope's list for a window (the fields of TrendingEntry)."""

    scope: str
    window_start: int
    window_end: int
    rank: int
    item: str
    score: float
    count: int
    velocity: float
    zscore: float


def scope_name(kind: str, spec: WindowSpec, viral: bool = False) -> str:
    """The scope of a ranked list, e.g. ``hashtags:1h`` or ``viral-posts:60s``."""
    return f"{VIRAL_PREFIX if viral else ''}{kind}:{spec.label}"


def top_k(kind: str, window: Window, items: Iterable[Scored], spec: WindowSpec, k: int) -> list[TopK]:
    """Rank one kind's items of one window: by score, and (viral ones only) by viral score.

    Ties break by count, then item, so the result is deterministic. Items with a score <= 0
    (e.g. a post whose likes were all undone) are not trending.
    """
    items = [s for s in items if s.score > 0]
    by_score = sorted(items, key=lambda s: (-s.score, -s.count, s.item))[:k]
    by_viral = sorted((s for s in items if s.viral > 0), key=lambda s: (-s.viral, -s.score, s.item))[:k]
    out: list[TopK] = []
    for viral, ranked in ((False, by_score), (True, by_viral)):
        scope = scope_name(kind, spec, viral)
        out.append(TopK(scope, window.start, window.end, [
            Ranked(scope, window.start, window.end, i, s.item, s.viral if viral else s.score, s.count,
                   s.velocity, s.zscore) for i, s in enumerate(ranked, 1)]))
    return out


# -- emission state of one (window spec, kind), driven by the job's rank step ---------------------
@dataclass
class RankState:
    """Per window end: items of not-yet-expired windows (for late deltas), and each fired window's weights.

    Both are mappings keyed by window end (the job backs them with Flink map state), so a firing
    touches the window itself and its ``baseline_windows`` predecessors, never every item's history.
    ``hidden``: posts moderation hides (post id -> watermark after which the entry can go,
    :func:`mark_visibility`); they are left out of every posts list fired meanwhile.
    """

    windows: MutableMapping[int, dict[str, Acc]] = field(default_factory=dict)
    history: MutableMapping[int, dict[str, float]] = field(default_factory=dict)
    hidden: MutableMapping[str, int] = field(default_factory=dict)


def merge_window(state: RankState, window_end: int, items: Iterable[tuple[str, int, float]]) -> None:
    """Add per-item ``(item, count, weight)`` partial aggregates (a window's rows or a late delta)."""
    win = state.windows.get(window_end) or {}
    for item, count, weight in items:
        win[item] = agg_add(win.get(item, agg_create()), int(count), float(weight))
    state.windows[window_end] = win


def fire(state: RankState, kind: str, window: Window, spec: WindowSpec, policy: ViralPolicy,
         k: int) -> list[TopK]:
    """Score a window's items against their own history, record the window in it, and rank."""
    items = state.windows.get(window.end) or {}
    ends = [window.end - j * spec.size_ms for j in range(1, policy.baseline_windows + 1)]
    past = [(e, state.history.get(e) or {}) for e in ends]
    scored = [score(kind, item, window, acc, {e: h[item] for e, h in past if item in h}, spec, policy)
              for item, acc in sorted(items.items()) if not (kind == POSTS and item in state.hidden)]
    state.history[window.end] = {item: acc[1] for item, acc in items.items()}
    return top_k(kind, window, scored, spec, k)


def expire(state: RankState, spec: WindowSpec, policy: ViralPolicy, watermark: int) -> None:
    """Drop windows past their allowed lateness and history no live window's baseline reaches."""
    for end in [e for e in state.windows if spec.expired(Window(e - spec.size_ms, e), watermark)]:
        del state.windows[end]
    horizon = watermark + 1 - spec.lateness_ms - policy.baseline_windows * spec.size_ms
    for end in [e for e in state.history if e < horizon]:
        del state.history[end]
    for post in [p for p, until in state.hidden.items() if until <= watermark]:
        del state.hidden[post]


def mark_visibility(state: RankState, post: str, hides: bool, watermark: int, horizon_ms: int) -> None:
    """A post's visibility flipped (a marker from the moderation step, ahead of its corrections):
    while hidden it is left out of every posts list, so none fired before all its corrections
    arrived (each re-fires a window) shows it with what is left of its weight. The entry goes after
    ``horizon_ms`` (:func:`visibility_horizon_ms`): every window live now is closed by then, and
    the moderation step holds back the post's later engagements while it stays hidden.
    """
    if hides:
        state.hidden[post] = watermark + horizon_ms
    elif post in state.hidden:
        del state.hidden[post]


def late_updates(spec: WindowSpec, ts: int, watermark: int) -> list[Window]:
    """Windows of ``ts`` that already fired but are within allowed lateness (they get a late update).

    Windows of ``ts`` that have not fired are counted by the window aggregation itself.
    """
    return sorted(w for w in spec.assign(ts) if spec.fired(w, watermark) and not spec.expired(w, watermark))


# -- reference model ---------------------------------------------------------------------------------
@dataclass
class Simulation:
    """What :func:`simulate` produced: every top-K emission in order, and the too-late events."""

    emissions: list[TopK] = field(default_factory=list)
    late: list[Contribution] = field(default_factory=list)

    def final(self) -> dict[tuple[str, int], list[Ranked]]:
        """The last emitted list per ``(scope, window_end)``."""
        return {(t.scope, t.window_end): t.entries for t in self.emissions}


def simulate(arrivals: Iterable[Contribution], spec: WindowSpec, k: int,
             policy: ViralPolicy = ViralPolicy(), flush: bool = True) -> Simulation:
    """Run the window/late/top-K rules over contributions in arrival order, watermark per element.

    The watermark after each element is ``max_ts - out_of_orderness - 1`` (Flink's bounded
    out-of-orderness); with ``flush`` a final watermark of +inf fires what is left. A ``moderation``
    row is a visibility marker (:func:`visibility_marker`): the post is left out of posts lists
    while hidden, as the job's rank step does (:func:`mark_visibility`).
    """
    sim = Simulation()
    state: dict[tuple[str, str, Window], Acc] = {}
    fired: set[tuple[str, Window]] = set()
    history: dict[tuple[str, str], dict[int, float]] = {}
    hidden: dict[str, int] = {}
    wm = -(1 << 62)

    def emit(kind: str, window: Window) -> None:
        scored = []
        for (k_, item, w), acc in sorted(state.items(), key=lambda kv: kv[0][:2]):
            if k_ == kind and w == window:
                h = history.setdefault((kind, item), {})
                if not (kind == POSTS and item in hidden):
                    scored.append(score(kind, item, w, acc, h, spec, policy))
                h[w.end] = acc[1]
        sim.emissions.extend(top_k(kind, window, scored, spec, k))

    def advance(new_wm: int) -> None:
        nonlocal wm
        if new_wm <= wm:
            return
        wm = new_wm
        due = sorted({(w.end, kind, w) for (kind, _, w) in state
                      if (kind, w) not in fired and spec.fired(w, wm)})
        for _, kind, w in due:
            fired.add((kind, w))
            emit(kind, w)
        for key in [key for key in state if spec.expired(key[2], wm)]:
            del state[key]
        for post in [p for p, until in hidden.items() if until <= wm]:
            del hidden[post]

    max_ts = -(1 << 62)
    for c in arrivals:
        if c.kind == MODERATION:  # a visibility marker (:func:`visibility_marker`): not windowed
            if c.weight > 0:
                hidden[c.item] = wm + dedup_horizon_ms([spec])
            else:
                hidden.pop(c.item, None)
            continue
        verdict = spec.classify(c.ts, wm)
        if verdict == "too_late":
            sim.late.append(c)
        else:
            touched = []
            for w in spec.assign(c.ts):
                if spec.expired(w, wm):
                    continue
                key = (c.kind, c.item, w)
                state[key] = agg_add(state.get(key, agg_create()), c.count, c.weight)
                if spec.fired(w, wm):  # late update: re-emitted now (or first emitted, if it was empty)
                    touched.append(w)
            for w in sorted(touched):
                fired.add((c.kind, w))
                emit(c.kind, w)
        max_ts = max(max_ts, c.ts)
        advance(max_ts - spec.out_of_orderness_ms - 1)
    if flush:
        advance(1 << 62)
    return sim


def __getattr__(name: str) -> Any:
    """``PostVisibility`` moved to :mod:`topologies.trending.moderation`; the job's keyed state pickled
    by an earlier version names it here, so it still resolves (PEP 562)."""
    if name == "PostVisibility":
        from topologies.trending.moderation import PostVisibility

        return PostVisibility
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
