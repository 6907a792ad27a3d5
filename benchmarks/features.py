"""Feature sets against a fair TF-IDF baseline: embedding vs tfidf vs hybrid, each with the logreg and svm
heads, beside TF-IDF + LinearSVC and TF-IDF + logistic regression in plain scikit-learn; and, with word and
character n-grams in the TF-IDF block (``--tfidf-ngrams word+char``), hybrid + svm against TF-IDF + LinearSVC.

    python benchmarks/features.py [--datasets goemotions,reuters,cfpb] [--cache DIR] [--out-dir benchmarks/results]

Every configuration, baselines included, gets the same treatment on the same split: C from the same
small grid, chosen on the validation split by the headline (micro-F1 with one tuned threshold for
multi-label targets, accuracy for multi-class ones); multi-label thresholds tuned on validation for
micro-F1 (one threshold) and for macro-F1 (one per label) with the same tuner. Baselines' margins go
through a sigmoid first, so the tuner's grid covers them. Fit time: the vectoriser's fit plus the head's
fit at the chosen C on cached embeddings; predict time: vectoriser plus head on the test set (encoding
the texts, the same for embedding and hybrid, is left out). Results go to ``features.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import load_splits  # noqa: E402
from embedclf.encode.encoder import Encoder  # noqa: E402
from embedclf.evaluate import evaluate  # noqa: E402
from embedclf.features.hybrid import join_blocks  # noqa: E402
from embedclf.features.tfidf import term_count, tfidf_vectorizer  # noqa: E402
from embedclf.heads import make_head  # noqa: E402
from embedclf.labels import MULTICLASS, LabelSpace, block_decisions, iter_blocks  # noqa: E402
from embedclf.postprocess.thresholds import tune_thresholds  # noqa: E402

GRIDS = {"logreg": (1.0, 4.0, 16.0), "svm": (0.1, 0.5, 2.0)}  # the same grid for a head and its baseline
FEATURE_SETS = ("embedding", "tfidf", "hybrid")


class Baseline:
    """Plain scikit-learn, one estimator per multi-class target and per label: the ten-line classic."""

    def __init__(self, kind: str, C: float):
        self.kind, self.C = kind, C

    def _estimator(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import LinearSVC

        # seeded as embedclf's svm head is: liblinear's dual solver visits coordinates in a random order
        return (LinearSVC(C=self.C, random_state=0) if self.kind == "svm"
                else LogisticRegression(C=self.C, max_iter=1000))

    def fit(self, X, Y, layout):
        self.layout_, self.models_ = layout, []
        for kind, block in iter_blocks(layout):
            part = Y[:, block]
            if kind == MULTICLASS:
                known = part.any(axis=1)
                self.models_.append(self._estimator().fit(X[known], part[known].argmax(axis=1)))
            else:
                self.models_.append([None if part[:, j].min() == part[:, j].max()
                                     else self._estimator().fit(X, part[:, j]) for j in range(part.shape[1])])
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Margins through a sigmoid (multi-label) or a softmax (multi-class): monotone, so the same decisions."""
        out = np.zeros((X.shape[0], sum(size for _, size in self.layout_)), dtype=np.float32)
        for (kind, block), model in zip(iter_blocks(self.layout_), self.models_):
            if kind == MULTICLASS:
                margin = np.full((X.shape[0], block.stop - block.start), -30.0)
                raw = model.decision_function(X)
                margin[:, model.classes_] = raw if raw.ndim == 2 else np.column_stack([-raw, raw])
                e = np.exp(margin - margin.max(axis=1, keepdims=True))
                out[:, block] = e / e.sum(axis=1, keepdims=True)
            else:
                for j, estimator in enumerate(model):
                    if estimator is not None:
                        out[:, block.start + j] = 1 / (1 + np.exp(-estimator.decision_function(X)))
        return out


def headline(space, Y, scores, thresholds) -> float:
    """Micro-F1 at ``thresholds`` for multi-label targets, accuracy for multi-class ones, averaged."""
    report = evaluate(space, Y, block_decisions(scores, space.layout, thresholds), scores)
    values = [m.get("micro_f1") if m.get("accuracy") is None else m["accuracy"] for m in report["targets"].values()]
    return float(np.mean(values))


def run_config(space, name, make, X, Y, X_valid, Y_valid, X_test, Y_test, extra_fit: float, extra_predict: float,
               grid: tuple[float, ...] | None = None):
    """Fit every C of the grid (``grid``, or the head's in ``GRIDS``), keep the best on validation, score it on
    test."""
    best = None
    for C in grid or GRIDS[name.split()[-1]]:
        start = time.perf_counter()
        model = make(C).fit(X, Y, layout=space.layout)
        seconds = time.perf_counter() - start
        S_valid = model.predict_proba(X_valid)
        micro = tune_thresholds(Y_valid, S_valid, space.layout, objective="micro")
        score = headline(space, Y_valid, S_valid, micro)
        print(f"      C={C:<5} valid {score:.4f} ({seconds:.1f}s)", flush=True)
        if best is None or score > best[0]:
            best = (score, C, model, seconds, S_valid, micro)
    score, C, model, seconds, S_valid, micro = best
    start = time.perf_counter()
    S_test = model.predict_proba(X_test)
    predict_seconds = time.perf_counter() - start + extra_predict
    macro = tune_thresholds(Y_valid, S_valid, space.layout, objective="macro")
    results, decisions = {}, {}
    for mode, thresholds in (("tuned (micro)", micro), ("tuned (macro)", macro)):
        decisions[mode] = block_decisions(S_test, space.layout, thresholds)
        report = evaluate(space, Y_test, decisions[mode], S_test)
        results[mode] = {t: {k: v for k, v in m.items() if k in ("micro_f1", "macro_f1", "accuracy")}
                         for t, m in report["targets"].items()}
    return decisions, {"C": C, "valid_headline": round(score, 4), "fit_seconds": round(seconds + extra_fit, 2),
            "predict_ms_per_1k": round(1e6 * predict_seconds / X_test.shape[0], 2), "test": results,
            "cooccurrence": cooccurrence_effect(space, Y, Y_valid, S_valid, Y_test, S_test)}


def cooccurrence_effect(space, Y, Y_valid, S_valid, Y_test, S_test) -> dict | None:
    """Test micro-F1 (one tuned threshold) and macro-F1 (per-label thresholds) of the multi-label target with
    no co-occurrence, the hard rules at P(B|A) >= 0.9 (support 5), and the soft mode (strength tuned on
    validation for the same objective, thresholds re-tuned on the raised scores)."""
    from sklearn.metrics import f1_score

    from embedclf.postprocess.rules import CooccurrenceRules
    from embedclf.postprocess.soft_cooccur import SoftCooccurrence, tune_strength

    blocks = [block for target, block in zip(space.targets, space.slices) if target.kind == "multilabel"]
    if not blocks:
        return None
    block, layout = blocks[0], [("multilabel", blocks[0].stop - blocks[0].start)]
    Y, Yv, Yt, Sv, St = Y[:, block], Y_valid[:, block], Y_test[:, block], S_valid[:, block], S_test[:, block]
    hard = CooccurrenceRules(0.9, 5).fit(Y, [str(i) for i in range(Y.shape[1])])
    soft = SoftCooccurrence().fit(Y)
    out = {"hard_rules": len(hard.rules_)}
    for objective in ("micro", "macro"):
        def rate(truth, scores, objective=objective):
            thresholds = tune_thresholds(Yv, scores, layout, objective=objective)
            return f1_score(truth, scores >= thresholds, average=objective, zero_division=0)

        th = tune_thresholds(Yv, Sv, layout, objective=objective)
        plain = St >= th
        strength, ratings = tune_strength(soft, Yv, Sv, rate)
        raised_valid, raised_test = soft.transform(Sv, strength), soft.transform(St, strength)
        soft_th = tune_thresholds(Yv, raised_valid, layout, objective=objective)
        out[objective] = {
            "none": f1_score(Yt, plain, average=objective, zero_division=0),
            "hard 0.9": f1_score(Yt, hard.apply(plain.astype(np.int8))[0], average=objective, zero_division=0),
            "soft": f1_score(Yt, raised_test >= soft_th, average=objective, zero_division=0),
            "soft_strength": strength, "soft_valid": dict(ratings)}
    return out


def margins(space, Y_test, decided: dict, rounds: int = 1000, seed: int = 0) -> dict:
    """Per headline metric: the best embedclf column against the best baseline on test, and a paired bootstrap
    of their difference over test rows (95% interval): the noise floor a margin has to clear."""
    from sklearn.metrics import f1_score

    def metric_fns():
        for target, block in zip(space.targets, space.slices):
            if target.kind == MULTICLASS:
                yield f"{target.name} accuracy", "tuned (micro)", lambda Y, D, b=block: float(
                    (Y[:, b].argmax(1) == D[:, b].argmax(1))[Y[:, b].any(1)].mean())
            else:
                for average in ("micro", "macro"):
                    yield f"{target.name} {average}-F1", f"tuned ({average})", lambda Y, D, b=block, a=average: float(
                        f1_score(Y[:, b], D[:, b], average=a, zero_division=0))

    rng = np.random.default_rng(seed)
    samples = [rng.integers(0, len(Y_test), len(Y_test)) for _ in range(rounds)]
    out = {}
    for name, mode, fn in metric_fns():
        scored = {label: fn(Y_test, d[mode]) for label, d in decided.items()}
        ours = max((l for l in scored if not l.startswith("baseline")), key=scored.get)
        theirs = max((l for l in scored if l.startswith("baseline")), key=scored.get)
        diffs = [fn(Y_test[i], decided[ours][mode][i]) - fn(Y_test[i], decided[theirs][mode][i]) for i in samples]
        out[name] = {"ours": ours, "theirs": theirs, "difference": round(scored[ours] - scored[theirs], 4),
                     "ci95": [round(float(np.percentile(diffs, 2.5)), 4), round(float(np.percentile(diffs, 97.5)), 4)]}
        print(f"   {name}: {ours} - {theirs} = {out[name]['difference']:+.4f}, 95% {out[name]['ci95']}", flush=True)
    return out


class TfidfBlocks(NamedTuple):
    terms: list  # the train, validation and test blocks
    fit_seconds: float
    predict_seconds: float  # the test split's transform
    count: int  # terms (columns)


def tfidf_blocks(split, ngrams: str = "word") -> TfidfBlocks:
    """The three splits' TF-IDF blocks as ``fit --tfidf-ngrams NGRAMS`` builds them, with the vectoriser's
    fit and test-transform seconds and its term count."""
    vectorizer = tfidf_vectorizer(ngrams)
    start = time.perf_counter()
    vectorizer.fit(split.train.texts)
    fit_seconds = time.perf_counter() - start
    terms = [vectorizer.transform(d.texts) for d in (split.train, split.valid, split.test)]
    start = time.perf_counter()
    vectorizer.transform(split.test.texts)
    return TfidfBlocks(terms, fit_seconds, time.perf_counter() - start, term_count(vectorizer))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="goemotions,reuters,cfpb")
    parser.add_argument("--cache", default=str(ROOT / "cache"), help="embedding cache (encoded once, first run pays)")
    parser.add_argument("--model", default=None, help="encoder: a local folder or a Hugging Face id")
    parser.add_argument("--tfidf-weight", type=float, default=1.0, help="hybrid's TF-IDF block weight")
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--name", default="features", help="results file name (without .json)")
    parser.add_argument("--quick", action="store_true", help="accuracy.py's seeded samples, to check the script")
    parser.add_argument("--methods", default=None,
                        help="only the columns whose names start with one of these (comma-separated), e.g. "
                             "'hybrid + svm,baseline': the others keep their rows from an earlier run")
    args = parser.parse_args()
    encoder = Encoder(**({"model": args.model} if args.model else {}), cache=args.cache, progress=False)
    out = Path(args.out_dir) / f"{args.name}.json"
    results = json.loads(out.read_text()) if out.exists() else {"rows": []}
    for split in load_splits(args.datasets.split(","), quick=args.quick):
        print(f"== {split.name}: {len(split.train.texts)} train, {len(split.valid.texts)} valid, "
              f"{len(split.test.texts)} test", flush=True)
        space = LabelSpace.from_dataset(split.train)
        Y, Y_valid, Y_test = (space.encode(d)[0] for d in (split.train, split.valid, split.test))
        dense = [encoder.encode(d.texts) for d in (split.train, split.valid, split.test)]
        tfidf = {"word": tfidf_blocks(split)}
        terms = tfidf["word"].terms
        features = {"embedding": dense, "tfidf": terms,
                    "hybrid": [join_blocks(d, t, sparse_weight=args.tfidf_weight) for d, t in zip(dense, terms)]}
        rows, decided = [], {}
        configs = [(f"{f} + {h}", f, (lambda C, h=h: make_head(h, C=C)))
                   for f in FEATURE_SETS for h in ("logreg", "svm")
                   if (f, h) != ("tfidf", "logreg")]  # the same LogisticRegression per label as the LR baseline
        configs += [(f"baseline TF-IDF + {'LinearSVC' if k == 'svm' else 'logistic regression'} {k}", "tfidf",
                     (lambda C, k=k: Baseline(k, C))) for k in ("svm", "logreg")]
        # word and character n-grams on both sides: the best hybrid's and the strongest classic baseline's
        configs += [("hybrid word+char + svm", "hybrid word+char", lambda C: make_head("svm", C=C)),
                    ("baseline TF-IDF word+char + LinearSVC svm", "tfidf word+char", lambda C: Baseline("svm", C))]
        if args.methods:
            configs = [c for c in configs if c[0].startswith(tuple(m.strip() for m in args.methods.split(",")))]
        if any(key.endswith("word+char") for _, key, _ in configs):
            tfidf["word+char"] = tfidf_blocks(split, "word+char")
            features["tfidf word+char"] = tfidf["word+char"].terms
            features["hybrid word+char"] = [join_blocks(d, t, sparse_weight=args.tfidf_weight)
                                            for d, t in zip(dense, tfidf["word+char"].terms)]
        for label, key, make in configs:
            X, X_valid, X_test = features[key]
            block = None if key == "embedding" else tfidf["word+char" if key.endswith("word+char") else "word"]
            print(f"   {label}", flush=True)
            decided[label], row = run_config(space, label, make, X, Y, X_valid, Y_valid, X_test, Y_test,
                                             block.fit_seconds if block else 0.0,
                                             block.predict_seconds if block else 0.0)
            rows.append({"dataset": split.name, "method": label.replace(" svm", "").replace(" logreg", "")
                         if label.startswith("baseline") else label, **row,
                         "train_rows": len(split.train.texts), "test_rows": len(split.test.texts),
                         "tfidf_terms": (block or tfidf["word"]).count,
                         "tfidf_weight": args.tfidf_weight, "model": str(encoder.settings.model)})
            print(f"      -> C={row['C']} test {json.dumps(row['test']['tuned (micro)'])}", flush=True)
        results["quick"] = args.quick
        measured = {(r["dataset"], r["method"]) for r in rows}
        results["rows"] = [r for r in results["rows"] if (r["dataset"], r["method"]) not in measured] + rows
        if any(label.startswith("baseline") for label in decided) and len(decided) > 1:
            results.setdefault("margins", {})[split.name] = margins(space, Y_test, decided)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))  # after each data set, so a failure later keeps the rest


if __name__ == "__main__":
    main()
