"""Accuracy of every head on the shared data sets, with and without tuned thresholds and co-occurrence rules.

    python benchmarks/accuracy.py [--quick] [--datasets goemotions,reuters,...] [--out-dir benchmarks/results]

Embeddings come from the embedclf cache (encoded once, first run pays). Fit time is the head's own
fit on cached embeddings; predict time is the head's scoring of the test embeddings. A TF-IDF +
LinearSVC baseline runs on the same split. Results go to ``accuracy.json``; ``report.py`` renders them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "datasets"

from embedclf.data import DataOptions, Dataset  # noqa: E402
from embedclf.encode.encoder import Encoder  # noqa: E402
from embedclf.evaluate import evaluate  # noqa: E402
from embedclf.fit import fit_classifier, validation_split  # noqa: E402
from embedclf.heads import head_params, make_head  # noqa: E402
from embedclf.labels import LabelSpace  # noqa: E402
from embedclf.postprocess.cooccur import learn_rules  # noqa: E402
from embedclf.postprocess.thresholds import tune_thresholds  # noqa: E402

HEADS = {
    "logreg": ("logreg", {}),
    "svm": ("svm", {}),
    "knn": ("knn", {}),
    "mlp (BCE)": ("mlp", {}),
    "mlp (focal)": ("mlp", {"loss": "focal"}),
    "chain": ("chain", {"order": "cooccurrence"}),
    "chain ensemble x5": ("chain", {"ensemble": 5}),
}
MULTILABEL_ONLY = {"chain", "chain ensemble x5", "mlp (focal)"}


@dataclass
class Split:
    """Train / validation / test of one data set, read with its data options."""

    name: str
    options: DataOptions
    train: Dataset
    valid: Dataset
    test: Dataset
    references: list[dict] = field(default_factory=list)


def _head_rows(dataset: Dataset, n: int | None, seed: int = 0) -> Dataset:
    if n is None or n >= len(dataset.texts):
        return dataset
    return dataset.subset(np.sort(np.random.RandomState(seed).permutation(len(dataset.texts))[:n]))


def _split(dataset: Dataset, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    Y = LabelSpace.from_dataset(dataset).encode(dataset)[0]
    keep, held = validation_split(Y, fraction, seed)
    return dataset.subset(keep), dataset.subset(held)


def load_splits(names: list[str], quick: bool) -> list[Split]:
    """The benchmark's data sets. Quick mode takes seeded samples of each split."""
    go, reu = DATA / "goemotions", DATA / "reuters21578"
    cap = (lambda n_full, n_quick: n_quick if quick else n_full)
    splits = []
    if "goemotions" in names:
        options = DataOptions(["text"], ["labels"], columns=["text", "labels", "id"], label_sep=",",
                              label_names=[str(go / "labels.txt")])
        train, valid, test = (options.load(go / f"{part}.tsv") for part in ("train", "dev", "test"))
        splits.append(Split("GoEmotions (28 labels)", options, _head_rows(train, cap(None, 6000)),
                            _head_rows(valid, cap(None, 1500)), _head_rows(test, cap(None, 1500)),
                            [{"method": "fine-tuned BERT-base (Demszky et al. 2020)", "macro_f1": 0.46}]))
    for key, label_cols, title in (("reuters", ["labels"], "Reuters-21578 ModApte (90 topics)"),
                                   ("reuters-multioutput", ["labels", "places"], "Reuters-21578 topics + places")):
        if key in names:
            options = DataOptions(["text"], label_cols)
            train, test = options.load(reu / "train.jsonl"), options.load(reu / "test.jsonl")
            train, valid = _split(train, 0.1)
            references = [{"method": "kNN (Yang & Liu 1999)", "micro_f1": 0.857},
                          {"method": "linear SVM on TF-IDF (literature)", "micro_f1": 0.865}] if key == "reuters" else []
            splits.append(Split(title, options, _head_rows(train, cap(None, 2500)), valid,
                                _head_rows(test, cap(None, 1000)), references))
    if "cfpb" in names:
        options = DataOptions(["Consumer complaint narrative"], ["Product", "Issue"])
        everything = options.load(DATA / "cfpb-complaints" / "complaints.csv")
        rest, test = _split(everything, 0.2)
        train, valid = _split(rest, 0.125)
        splits.append(Split("CFPB complaints (Product + Issue)", options, train, valid, test))
    return splits


def _decisions(classifier, scores, thresholds, rules):
    classifier.thresholds = thresholds
    classifier.rules = rules
    return classifier.decide(scores)[0]


def run_head(split: Split, label: str, encoder: Encoder, rules) -> list[dict]:
    """Fit one head, then score the test set at 0.5, tuned for macro and tuned for micro, without/with rules."""
    name, params = HEADS[label]
    seeded = {"random_state": 0} if "random_state" in head_params(name) else {}
    head = make_head(name, **seeded, **params)
    classifier = fit_classifier(split.train, head, encoder, data_options=split.options, valid=split.valid,
                                features="embedding")  # the heads on embeddings: features.py compares feature sets
    space = classifier.space
    X_valid, X_test = encoder.encode(split.valid.texts), encoder.encode(split.test.texts)
    Y_valid, Y_test = space.encode(split.valid)[0], space.encode(split.test)[0]
    S_valid = classifier.scores(X_valid)
    modes = (("global 0.5", np.full(space.n_columns, 0.5)),
             ("tuned (macro)", tune_thresholds(Y_valid, S_valid, space.layout, objective="macro")),
             ("tuned (micro)", tune_thresholds(Y_valid, S_valid, space.layout, objective="micro")))
    start = time.perf_counter()
    scores = classifier.scores(X_test)
    predict_seconds = time.perf_counter() - start
    rows = []
    for thresholds_name, thresholds in modes:
        for rules_name, rule_set in (("-", None), ("rules 0.9", rules)):
            if rule_set is None and rules_name != "-":
                continue
            report = evaluate(space, Y_test, _decisions(classifier, scores, thresholds, rule_set), scores)
            rows.append(_row(split, label, thresholds_name, rules_name, report,
                             classifier.info["fit_seconds"], predict_seconds, len(X_test)))
    return rows


def _row(split, method, thresholds, rules, report, fit_seconds, predict_seconds, n_test) -> dict:
    targets = {name: {k: v for k, v in metrics.items() if isinstance(v, (int, float)) or v is None}
               for name, metrics in report["targets"].items()}
    per_label = {name: metrics.get("per_label") for name, metrics in report["targets"].items()}
    return {"dataset": split.name, "method": method, "thresholds": thresholds, "rules": rules,
            "targets": targets, "exact_match": report.get("exact_match"), "per_label": per_label,
            "fit_seconds": round(fit_seconds, 2), "predict_ms_per_1k": round(1000 * predict_seconds / n_test * 1000, 2),
            "train_rows": len(split.train.texts), "test_rows": n_test}


def tfidf_baseline(split: Split) -> dict:
    """TF-IDF (1-2 grams) + LinearSVC per label / per target: the classic strong baseline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    space = LabelSpace.from_dataset(split.train)
    Y, Y_test = space.encode(split.train)[0], space.encode(split.test)[0]
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    X = vectorizer.fit_transform(split.train.texts)
    X_test = vectorizer.transform(split.test.texts)
    scores = np.zeros(Y_test.shape, dtype=np.float32)
    decisions = np.zeros(Y_test.shape, dtype=np.int8)
    for target, block in zip(space.targets, space.slices):
        part = Y[:, block]
        if target.kind == "multiclass":
            model = LinearSVC(C=0.5).fit(X, part.argmax(axis=1))
            margin = np.full((X_test.shape[0], part.shape[1]), -10.0)
            margin[:, model.classes_] = model.decision_function(X_test).reshape(X_test.shape[0], -1) \
                if len(model.classes_) > 2 else np.column_stack([-model.decision_function(X_test),
                                                                  model.decision_function(X_test)])
            scores[:, block] = margin
            decisions[np.arange(len(margin)), block.start + margin.argmax(axis=1)] = 1
            continue
        for j in range(part.shape[1]):
            column = block.start + j
            if part[:, j].min() == part[:, j].max():
                scores[:, column] = -10.0
                continue
            margin = LinearSVC(C=0.5).fit(X, part[:, j]).decision_function(X_test)
            scores[:, column], decisions[:, column] = margin, margin > 0
    seconds = time.perf_counter() - start
    report = evaluate(space, Y_test, decisions, scores)
    return _row(split, "TF-IDF + LinearSVC (baseline)", "margin 0", "-", report, seconds, 0.0, len(Y_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seeded samples of each split, for a fast look")
    parser.add_argument("--datasets", default="goemotions,reuters,reuters-multioutput,cfpb")
    parser.add_argument("--heads", default=",".join(HEADS))
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--merge", action="store_true", help="keep other data sets' rows of an earlier results file")
    args = parser.parse_args()
    encoder = Encoder(cache=ROOT / "cache", progress=False)
    results = {"quick": args.quick, "rows": [], "references": []}
    for split in load_splits(args.datasets.split(","), args.quick):
        print(f"== {split.name}: {len(split.train.texts)} train, {len(split.valid.texts)} valid, "
              f"{len(split.test.texts)} test", flush=True)
        space = LabelSpace.from_dataset(split.train)
        rules = None
        if any(t.kind == "multilabel" for t in space.targets):
            rules = learn_rules(split.train, 0.9, 5)
            print(f"   {rules.summary()}", flush=True)
            rules = rules if rules.rules_ else None
        for label in args.heads.split(","):
            if label in MULTILABEL_ONLY and space.task == "multiclass":
                continue
            start = time.perf_counter()
            rows = run_head(split, label, encoder, rules)
            results["rows"].extend(rows)
            best = max(rows, key=lambda r: _headline(r))
            print(f"   {label:<20} {_headline(best):.4f} ({time.perf_counter() - start:.0f}s)", flush=True)
        results["rows"].append(tfidf_baseline(split))
        results["references"].extend({"dataset": split.name, **ref} for ref in split.references)
        _save(results, args)  # after each data set, so a failure later keeps what was measured


def _save(results: dict, args) -> None:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = "accuracy-quick.json" if args.quick else "accuracy.json"
    previous = json.loads((out / name).read_text()) if args.merge and (out / name).exists() else None
    if previous:  # keep the other data sets' rows from an earlier run
        done = {row["dataset"] for row in results["rows"]}
        results = {**results, "rows": [r for r in previous["rows"] if r["dataset"] not in done] + results["rows"],
                   "references": [r for r in previous["references"] if r["dataset"] not in done]
                   + results["references"]}
    (out / name).write_text(json.dumps(results, indent=1))


def _headline(row: dict) -> float:
    values = [m.get("micro_f1") for m in row["targets"].values()]
    return float(np.mean([v for v in values if v is not None]))


if __name__ == "__main__":
    main()
