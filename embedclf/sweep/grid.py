"""What a sweep tries: heads × their parameters × feature sets × threshold modes × rule thresholds.

A :class:`Grid` is frozen and checked once, when it is made (from TOML with :func:`load_grid`, or
one of the built-in grids): every head's every parameter combination goes through ``make_head``,
so a bad value is one line naming the grid file, the head entry and the parameter, before any data
is read. :meth:`Grid.configurations` expands it into :class:`Configuration` objects, each with a
stable ``key`` by which ``--resume`` knows what is finished.

Threshold modes and rule thresholds are decisions taken on a fitted head's validation scores, so a
head is fitted once per fold and every decision is tried on its scores: they cost almost nothing.
Feature sets (``embedding``, ``tfidf`` with each of ``tfidf_ngrams``, ``hybrid`` with each of
``tfidf_ngrams`` and ``tfidf_weights``) pair only with the heads that take them: the MLP and chains take
the dense embedding alone.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from embedclf.errors import EmbedclfError
from embedclf.features import DEFAULT_TFIDF_WEIGHT, FEATURE_SETS, SPARSE_HEADS
from embedclf.features.tfidf import NGRAMS

THRESHOLD_MODES = ("fixed", "micro", "macro")  # 0.5 (or --threshold); tuned for micro-F1; tuned per label
BUILT_IN = ("default", "mlp")
NONE_WORDS = ("none", "null")  # TOML has no null: these strings stand for "not set"


@dataclass(frozen=True)
class HeadConfig:
    """One head with one value per parameter (``params`` sorted by name, so equal configs compare equal);
    ``features``, where given, the feature sets this head is tried on instead of the grid's."""

    head: str
    params: tuple[tuple[str, object], ...] = ()
    features: tuple[str, ...] | None = None

    def build(self, **extra):
        from embedclf.heads import make_head

        return make_head(self.head, **dict(self.params), **extra)

    def label(self) -> str:
        shown = " ".join(f"{name}={_show(value)}" for name, value in self.params)
        return f"{self.head} {shown}".strip()


@dataclass(frozen=True)
class Configuration:
    """One row of the leaderboard: a head config, a feature set and how its scores become decisions.

    ``tfidf_weight`` is the TF-IDF block's weight for ``hybrid`` features, None for the others;
    ``tfidf_ngrams`` its n-grams (``word``, ``word+char``) for ``tfidf`` and ``hybrid``, None for the embedding.
    """

    head: HeadConfig
    features: str = "embedding"
    thresholds: str = "fixed"
    rule_threshold: float | None = None
    tfidf_weight: float | None = None
    tfidf_ngrams: str | None = None

    @property
    def feature_key(self) -> str:
        """The features the head is fitted on: configurations sharing it share one matrix per fold. Word
        n-grams, the default, are not named, so keys from sweeps before ``tfidf_ngrams`` still resume."""
        key = self.features if self.tfidf_weight is None else f"{self.features} tfidf_weight={self.tfidf_weight:g}"
        return key if self.tfidf_ngrams in (None, "word") else f"{key} ngrams={self.tfidf_ngrams}"

    @property
    def fit_key(self) -> str:
        """What is fitted: configurations sharing it share one fitted head per fold."""
        return f"{self.head.label()} | features={self.feature_key}"

    @property
    def key(self) -> str:
        rules = "none" if self.rule_threshold is None else f"{self.rule_threshold:g}"
        return f"{self.fit_key} | thresholds={self.thresholds} | rules={rules}"

    def as_record(self) -> dict:
        return {"head": self.head.head, "params": {k: _jsonable(v) for k, v in self.head.params},
                "features": self.features, "tfidf_weight": self.tfidf_weight, "tfidf_ngrams": self.tfidf_ngrams,
                "thresholds": self.thresholds, "rule_threshold": self.rule_threshold}


@dataclass(frozen=True)
class Grid:
    """Heads (each a :class:`HeadConfig`) and the decision axes tried on every one of them."""

    heads: tuple[HeadConfig, ...]
    threshold_modes: tuple[str, ...] = THRESHOLD_MODES
    rule_thresholds: tuple[float | None, ...] = (None,)
    rule_min_support: int = 5
    features: tuple[str, ...] = ("embedding",)
    tfidf_weights: tuple[float, ...] = (DEFAULT_TFIDF_WEIGHT,)
    tfidf_ngrams: tuple[str, ...] = ("word",)
    source: str = field(default="the grid", compare=False)

    def __post_init__(self):
        where = self.source
        if not self.heads:
            raise EmbedclfError(f"{where}: no heads to try; add a [[heads]] table")
        for name, values in (("threshold_modes", self.threshold_modes), ("features", self.features),
                             ("rule_thresholds", self.rule_thresholds), ("tfidf_weights", self.tfidf_weights),
                             ("tfidf_ngrams", self.tfidf_ngrams)):
            if not values:
                raise EmbedclfError(f"{where}: {name} is empty")
            if len(set(values)) != len(values):
                raise EmbedclfError(f"{where}: {name} lists a value twice: {list(values)!r}")
        for mode in self.threshold_modes:
            if mode not in THRESHOLD_MODES:
                raise EmbedclfError(f"{where}: threshold mode {mode!r} is not one of: {', '.join(THRESHOLD_MODES)}")
        for features in sorted(set(self.features).union(*(h.features or () for h in self.heads))):
            if features not in FEATURE_SETS:
                raise EmbedclfError(f"{where}: feature set {features!r} is not one of: {', '.join(FEATURE_SETS)}")
        for head in self.heads:
            if head.features is not None and not head.features:
                raise EmbedclfError(f"{where}: {head.label()}: features is empty")
            if head.features and head.head not in SPARSE_HEADS and set(head.features) != {"embedding"}:
                raise EmbedclfError(f"{where}: {head.label()}: the {head.head} head takes the embedding only")
        for weight in self.tfidf_weights:
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 100:
                raise EmbedclfError(f"{where}: tfidf_weights must be numbers above 0 and at most 100, got {weight!r}")
        for ngrams in self.tfidf_ngrams:
            if ngrams not in NGRAMS:
                raise EmbedclfError(f"{where}: tfidf_ngrams {ngrams!r} is not one of: {', '.join(NGRAMS)}")
        sparse_features = [f for f in self.features if f != "embedding"]
        if sparse_features and not any(h.head in SPARSE_HEADS for h in self.heads if h.features is None):
            raise EmbedclfError(f"{where}: feature set {sparse_features[0]!r} is sparse and no head in the grid "
                                f"takes it ({', '.join(SPARSE_HEADS)} do)")
        from embedclf.postprocess.rule_inputs import RuleSettings

        try:
            for threshold in self.rule_thresholds:
                RuleSettings(1.0 if threshold is None else threshold, self.rule_min_support)
        except EmbedclfError as exc:
            raise EmbedclfError(f"{where}: {exc}") from None
        if len(set(self.heads)) != len(self.heads):
            raise EmbedclfError(f"{where}: a head configuration is listed twice")
        for config in self.heads:
            try:
                config.build()
            except EmbedclfError as exc:
                raise EmbedclfError(f"{where}: {config.label()}: {exc}") from None

    def configurations(self, multilabel: bool = True) -> list[Configuration]:
        """Every configuration; without a multi-label target thresholds and rules do not apply and collapse."""
        modes = self.threshold_modes if multilabel else ("fixed",)
        rules = self.rule_thresholds if multilabel else (None,)
        return [Configuration(head, features, mode, rule, weight, ngrams)
                for head in self.heads for (features, weight, ngrams), mode, rule in itertools.product(
                    self._feature_sets(head), modes, rules)
                if features == "embedding" or head.head in SPARSE_HEADS]

    def dense_only_pairs(self) -> int:
        """How many head × feature set pairs are left out because the head takes dense input only."""
        return sum(features != "embedding" and head.head not in SPARSE_HEADS
                   for head in self.heads for features, _, _ in self._feature_sets(head))

    def _feature_sets(self, head: HeadConfig) -> list[tuple[str, float | None, str | None]]:
        return [(features, weight, ngrams) for features in (head.features or self.features)
                for ngrams in (self.tfidf_ngrams if features != "embedding" else (None,))
                for weight in (self.tfidf_weights if features == "hybrid" else (None,))]

    def as_record(self) -> dict:
        return {"heads": [{"head": h.head, **{k: _jsonable(v) for k, v in h.params},
                           **({"features": list(h.features)} if h.features is not None else {})} for h in self.heads],
                "threshold_modes": list(self.threshold_modes), "rule_thresholds": list(self.rule_thresholds),
                "rule_min_support": self.rule_min_support, "features": list(self.features),
                "tfidf_weights": list(self.tfidf_weights), "tfidf_ngrams": list(self.tfidf_ngrams)}


def expand_head(head: str, axes: dict[str, list], features: tuple[str, ...] | None = None) -> list[HeadConfig]:
    """Every combination of ``axes`` (parameter → values) for ``head``, tried on ``features`` (None: the grid's)."""
    names = sorted(axes)
    return [HeadConfig(head, tuple(zip(names, values)), features)
            for values in itertools.product(*(axes[n] for n in names))]


def default_grid() -> Grid:
    """13 heads × three threshold modes × no rules / rules at 0.9 (78 configurations): logistic regression
    (C × class weight) and kNN (k × weighting) on the embedding, and the svm on hybrid features, the best
    column of the feature-set benchmark; sized to take minutes on two cores for 40k texts."""
    heads = (expand_head("logreg", {"C": [0.3, 1.0, 3.0], "class_weight": [None, "balanced"]})
             + expand_head("knn", {"n_neighbors": [10, 30, 100], "weights": ["uniform", "distance"]}))
    hybrid_svm = expand_head("svm", {"C": [0.1]}, features=("hybrid",))  # 3 calibration fits per label: the slowest
    return Grid(tuple(heads + hybrid_svm), rule_thresholds=(None, 0.9), source="the default grid")


def mlp_grid() -> Grid:
    """6 MLPs: three shapes × two dropouts (early stopping on the validation data, as in ``fit``)."""
    heads = expand_head("mlp", {"hidden": [(256,), (512,), (512, 256)], "dropout": [0.1, 0.3]})
    return Grid(tuple(heads), rule_thresholds=(None, 0.9), source="the mlp grid")


def load_grid(spec: str | Path) -> Grid:
    """A built-in grid by name (``default``, ``mlp``) or a TOML file (see ``examples/grid.toml``)."""
    if str(spec) in BUILT_IN:
        return default_grid() if str(spec) == "default" else mlp_grid()
    import tomllib

    path = Path(spec)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmbedclfError(f"--grid {path}: no such file (or give a built-in grid: {', '.join(BUILT_IN)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EmbedclfError(f"--grid {path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise EmbedclfError(f"--grid {path}: not valid TOML: {exc}") from None
    return grid_from_dict(document, f"--grid {path}")


def grid_from_dict(document: dict, source: str = "the grid") -> Grid:
    known = {"heads", "threshold_modes", "rule_thresholds", "rule_min_support", "features", "tfidf_weights",
             "tfidf_ngrams"}
    unknown = sorted(set(document) - known)
    if unknown:
        raise EmbedclfError(f"{source}: unknown key {unknown[0]!r}; expected: {', '.join(sorted(known))}")
    tables = document.get("heads")
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise EmbedclfError(f"{source}: expected [[heads]] tables, each with head = \"logreg\" and parameter lists")
    heads = []
    for i, table in enumerate(tables):
        name = table.get("head")
        if not isinstance(name, str):
            raise EmbedclfError(f"{source}: heads[{i}] has no head = \"...\" (logreg, svm, knn, mlp, chain)")
        axes = {key: [_value(v) for v in (values if isinstance(values, list) else [values])]
                for key, values in table.items() if key not in ("head", "features")}
        if any(not values for values in axes.values()):
            raise EmbedclfError(f"{source}: heads[{i}] ({name}): a parameter has an empty list of values")
        features = table.get("features")
        features = None if features is None else tuple(_list(features, f"heads[{i}] ({name}) features", source))
        heads += expand_head(name, axes, features)
    rules = tuple(_value(v) for v in _list(document.get("rule_thresholds", ["none"]), "rule_thresholds", source))
    try:
        return Grid(tuple(heads), tuple(_list(document.get("threshold_modes", list(THRESHOLD_MODES)),
                                              "threshold_modes", source)),
                    rules, document.get("rule_min_support", 5),
                    tuple(_list(document.get("features", ["embedding"]), "features", source)),
                    tuple(_list(document.get("tfidf_weights", [DEFAULT_TFIDF_WEIGHT]), "tfidf_weights", source)),
                    tuple(_list(document.get("tfidf_ngrams", ["word"]), "tfidf_ngrams", source)),
                    source=source)
    except TypeError as exc:  # a list holding a table, say: unhashable
        raise EmbedclfError(f"{source}: {exc}") from None


def _list(value, name: str, source: str) -> list:
    if not isinstance(value, list):
        raise EmbedclfError(f"{source}: {name} must be a list, got {value!r}")
    return value


def _value(value):
    """A TOML value as a head parameter: "none" is None, a list (MLP hidden sizes) a tuple."""
    if isinstance(value, str) and value.lower() in NONE_WORDS:
        return None
    return tuple(value) if isinstance(value, list) else value


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


def _show(value) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value)) or "()"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
