"""Render ``benchmarks/REPORT.md`` and its plots from the JSON results the benchmark scripts wrote.

    python benchmarks/report.py [--results benchmarks/results]

Nothing here measures: every figure comes from a results file, so the report always says what the
scripts in the same commit produced.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH = ROOT / "benchmarks"


def _fmt(value, digits=4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _load(results: Path, name: str) -> dict | None:
    path = results / name
    return json.loads(path.read_text()) if path.exists() else None


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=ROOT).stdout.strip()
    except OSError:
        return "unknown"


# -- accuracy -------------------------------------------------------------------------------------
def accuracy_section(accuracy: dict) -> list[str]:
    lines = ["## 1. Accuracy", ""]
    if accuracy.get("quick"):
        lines += ["*Quick mode: seeded samples of each split; see the train/test rows per table.*", ""]
    lines += ["Heads are fitted on cached all-MiniLM-L6-v2 embeddings (mean pooling, normalised). "
              "Thresholds of multi-label targets: `global 0.5`; `tuned (macro)`, one per label, each maximising its "
              "label's F1 on the validation split (`--tune-for macro`, best for macro-F1); `tuned (micro)`, one per "
              "target maximising its micro-F1 (`--tune-for micro`). Multi-class targets take the argmax whatever "
              "the thresholds. `rules 0.9` applies "
              "the co-occurrence rules learnt on the training labels at P(B|A) ≥ 0.9. Fit time is the head's "
              "own fit on cached embeddings (encoding excluded, it is paid once); predict time is the head's "
              "scoring per 1,000 texts.", ""]
    datasets = list(dict.fromkeys(row["dataset"] for row in accuracy["rows"]))
    for dataset in datasets:
        rows = [r for r in accuracy["rows"] if r["dataset"] == dataset]
        targets = list(rows[0]["targets"])
        lines += [f"### {dataset}", "", f"{rows[0]['train_rows']:,} train / {rows[0]['test_rows']:,} test texts.", ""]
        header = ["method", "thresholds", "rules"]
        for target in targets:
            prefix = f"{target} " if len(targets) > 1 else ""
            header += [f"{prefix}micro-F1", f"{prefix}macro-F1",
                       f"{prefix}accuracy" if _multiclass(rows[0]["targets"][target]) else f"{prefix}micro AUC"]
        header += ["fit s", "predict ms/1k"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in rows:
            cells = [row["method"], row["thresholds"], row["rules"]]
            for target in targets:
                metrics = row["targets"][target]
                third = metrics.get("accuracy") if _multiclass(metrics) else metrics.get("micro_roc_auc")
                cells += [_fmt(metrics.get("micro_f1")), _fmt(metrics.get("macro_f1")), _fmt(third)]
            cells += [_fmt(row["fit_seconds"], 1), _fmt(row["predict_ms_per_1k"], 1)]
            lines.append("| " + " | ".join(cells) + " |")
        for ref in accuracy.get("references", []):
            if ref["dataset"] == dataset:
                cells = [f"*{ref['method']}* (published)", "", ""]
                for target in targets[:1]:
                    cells += [_fmt(ref.get("micro_f1"), 3), _fmt(ref.get("macro_f1"), 2), ""]
                cells += [""] * (len(header) - len(cells))
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _multiclass(metrics: dict) -> bool:
    return "accuracy" in metrics  # only multi-class targets report accuracy


def best_rows(accuracy: dict) -> dict:
    """Per data set, the embedclf row with the best mean micro-F1 over targets."""
    best = {}
    for row in accuracy["rows"]:
        if "baseline" in row["method"]:
            continue
        score = np.mean([m.get("micro_f1") or 0 for m in row["targets"].values()])
        if row["dataset"] not in best or score > best[row["dataset"]][0]:
            best[row["dataset"]] = (score, row)
    return {k: v[1] for k, v in best.items()}


def headline_section(accuracy: dict, features: dict | None = None) -> list[str]:
    lines = ["## Headline", ""]
    if features and features.get("margins"):
        lines += ["Against the best tuned TF-IDF baseline (`features.py`, full splits: C chosen on validation, "
                  "thresholds tuned alike; word or word+char n-grams, logistic regression or LinearSVC), the best "
                  "embedclf column, with its margin and a 95% paired bootstrap interval:", "",
                  "| data set | metric | best embedclf column | its score | best tuned baseline | its score "
                  "| margin, points |", "|---|---|---|---:|---|---:|---:|"]
        for dataset, metrics in features["margins"].items():
            for metric, m in metrics.items():
                ours = _score(features, dataset, m["ours"], metric)
                theirs = _score(features, dataset, m["theirs"], metric)
                baseline = m["theirs"].removeprefix("baseline ").removesuffix(" svm").removesuffix(" logreg")
                lines.append(f"| {dataset} | {metric} | {m['ours']} | {_fmt(ours)} | {baseline} | {_fmt(theirs)} | "
                             f"{100 * m['difference']:+.1f} ({100 * m['ci95'][0]:+.1f} to {100 * m['ci95'][1]:+.1f}) |")
        lines += ["", "The heads on the embedding alone (`accuracy.py`), beside the untuned baseline:", ""]
    lines += ["| data set | best head on the embedding (test) | micro-F1 | macro-F1 | TF-IDF + LinearSVC micro-F1 |",
              "|---|---|---|---|---|"]
    baselines = {r["dataset"]: r for r in accuracy["rows"] if "baseline" in r["method"]}
    for dataset, row in best_rows(accuracy).items():
        first = next(iter(row["targets"].values()))
        base = next(iter(baselines[dataset]["targets"].values())) if dataset in baselines else {}
        lines.append(f"| {dataset} | {row['method']}, {row['thresholds']} thresholds{', ' + row['rules'] if row['rules'] != '-' else ''} "
                     f"| {_fmt(first.get('micro_f1'))} | {_fmt(first.get('macro_f1'))} | {_fmt(base.get('micro_f1'))} |")
    return lines + ["", "Multi-output rows show the first target; the tables below give every target.", ""]


def _score(features: dict, dataset: str, method: str, metric: str) -> float | None:
    """A features.json column's test figure for a headline metric ("labels micro-F1", "Product accuracy")."""
    from benchmarks.features_report import _cells

    name = method.removesuffix(" svm").removesuffix(" logreg") if method.startswith("baseline") else method
    row = next((r for r in features["rows"] if r["dataset"] == dataset and r["method"] == name), None)
    return None if row is None else _cells(row).get(metric)


def cooccurrence_section(accuracy: dict, figures: Path) -> list[str]:
    lines = ["## Co-occurrence rules", ""]
    for dataset in dict.fromkeys(r["dataset"] for r in accuracy["rows"]):
        pairs = {}
        for row in accuracy["rows"]:
            if row["dataset"] == dataset:
                pairs.setdefault((row["method"], row["thresholds"]), {})[row["rules"]] = row
        effects = [(k, v["-"], v["rules 0.9"]) for k, v in pairs.items() if "rules 0.9" in v and "-" in v]
        if not effects:
            lines += [f"- {dataset}: no rule reaches P(B|A) ≥ 0.9 (with support ≥ 5), so the post-processor "
                      "changes nothing here.", ""]
            continue
        lines += [f"### {dataset}", "", "| head | thresholds | micro-F1 before → after | macro-F1 before → after |",
                  "|---|---|---|---|"]
        for (method, thresholds), before, after in effects:
            b, a = next(iter(before["targets"].values())), next(iter(after["targets"].values()))
            lines.append(f"| {method} | {thresholds} | {_fmt(b['micro_f1'])} → {_fmt(a['micro_f1'])} "
                         f"({a['micro_f1'] - b['micro_f1']:+.4f}) | {_fmt(b['macro_f1'])} → {_fmt(a['macro_f1'])} "
                         f"({a['macro_f1'] - b['macro_f1']:+.4f}) |")
        lines.append("")
    if (figures / "reuters-rules.png").exists():
        lines += ["Rules learnt on the Reuters training topics at 0.9 (`embedclf cooccur ... --graph`):", "",
                  f"![Reuters co-occurrence rules]({figures.name}/reuters-rules.png)", ""]
    return lines


# -- plots ----------------------------------------------------------------------------------------
def plot_score_vs_time(accuracy: dict, figures: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in accuracy["rows"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        rows = [r for r in accuracy["rows"] if r["dataset"] == dataset and r["rules"] == "-"
                and r["thresholds"] in ("tuned (micro)", "margin 0")]
        for row in rows:
            score = np.mean([m.get("micro_f1") or 0 for m in row["targets"].values()])
            ax.scatter(max(row["fit_seconds"], 0.01), score, s=40)
            ax.annotate(row["method"].replace(" (baseline)", ""), (max(row["fit_seconds"], 0.01), score), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("fit time, s (log)")
        ax.set_ylabel("test micro-F1 (thresholds tuned for micro)")
        ax.set_title(dataset, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(figures / "score-vs-fit-time.png", dpi=110)
    plt.close(fig)
    return [f"![score vs fit time]({figures.name}/score-vs-fit-time.png)", ""]


def plot_label_f1(accuracy: dict, figures: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = []
    for dataset, row in best_rows(accuracy).items():
        target, per_label = next(iter(row["per_label"].items()))
        if not per_label:
            continue
        names = list(per_label)
        support = np.array([per_label[n]["support"] for n in names])
        f1 = np.array([per_label[n]["f1"] for n in names])
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.scatter(np.maximum(support, 0.8), f1, s=18)
        for name, s, f in zip(names, support, f1):
            if f < 0.3 or s == support.max():
                ax.annotate(name, (max(s, 0.8), f), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("test support (log)")
        ax.set_ylabel("test F1")
        ax.set_title(f"{dataset}: per-label F1 of {row['method']} ({row['thresholds']})", fontsize=9)
        ax.grid(alpha=0.3)
        slug = "".join(c if c.isalnum() else "-" for c in dataset.lower()).strip("-")
        slug = "-".join(part for part in slug.split("-") if part)
        fig.tight_layout()
        fig.savefig(figures / f"label-f1-{slug}.png", dpi=110)
        plt.close(fig)
        lines += [f"![per-label F1, {dataset}]({figures.name}/label-f1-{slug}.png)", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(BENCH / "results"))
    parser.add_argument("--out", default=None, help="[default: REPORT.md, or REPORT-quick.md with --quick]")
    parser.add_argument("--quick", action="store_true", help="render the quick runs' results")
    args = parser.parse_args()
    suffix = "-quick" if args.quick else ""
    args.out = args.out or str(BENCH / f"REPORT{suffix}.md")
    results, figures = Path(args.results), BENCH / f"figures{suffix}"
    figures.mkdir(exist_ok=True)
    lines = ["# embedclf benchmark report", "", f"Produced by `python benchmarks/run.py` at commit `{_commit()}`; "
             "every figure below comes from the JSON files in `benchmarks/results/`.", ""]
    encode = _load(results, f"encode{suffix}.json") or _load(results, "encode.json")
    if encode is not None:
        from benchmarks.encode import machine_lines

        lines += machine_lines(encode) + [""]
    accuracy = _load(results, f"accuracy{suffix}.json")
    if accuracy:
        lines += headline_section(accuracy, _load(results, f"features{suffix}.json"))
    if encode is not None:
        from benchmarks.encode import render

        lines += render(encode) + [""]
    backends, downstream = _load(results, f"backends{suffix}.json"), _load(results, f"downstream{suffix}.json")
    if backends or downstream:
        from benchmarks.downstream import render as render_backends

        lines += render_backends(downstream, backends)
    cpu = results / f"backends-cpu{suffix}.md"
    if cpu.exists():
        lines += ["## Fast CPU encoding: precision auto, OpenVINO, guarded int8, cold starts", "",
                  "`python benchmarks/backends.py --short 2000 --long 500 --rounds 3 --st-python PY --fastembed-"
                  f"python PY` (results/{cpu.stem}.json; ST's onnx/openvino and fastembed from venvs of their own, "
                  "see benchmarks/README.md). Targets: the default at least 2x plain ST on short and long texts at "
                  "cosine .999; the fastest int8 at least 4x on both, cosine mean .995 and min .98, ahead of the "
                  "OpenVINO nncf-default int8 peer and fastembed; a new cache directory adds at most 1 s; peak "
                  "memory no higher than plain ST's.", "",
                  *cpu.read_text().splitlines(), ""]
    if accuracy:
        lines += accuracy_section(accuracy)
        lines += ["## Plots", ""] + plot_score_vs_time(accuracy, figures) + plot_label_f1(accuracy, figures)
        lines += cooccurrence_section(accuracy, figures)
    features = _load(results, f"features{suffix}.json")
    if features is not None:
        from benchmarks.features_report import render as render_features

        lines += render_features(features, _load(results, f"finetune{suffix}.json"))
    fit_time = _load(results, f"fit_time{suffix}.json")
    if fit_time is not None:
        from benchmarks.fit_time import render as render_fit_time

        lines += render_fit_time(fit_time)
    defaults = _load(results, f"defaults{suffix}.json")
    if defaults is not None:
        from benchmarks.defaults import render as render_defaults

        lines += render_defaults(defaults)
    tfidf_weight = _load(results, f"tfidf_weight{suffix}.json")
    if tfidf_weight is not None:
        from benchmarks.tfidf_weight import render as render_tfidf_weight

        lines += render_tfidf_weight(tfidf_weight)
    char_ngrams = _load(results, f"char_ngrams{suffix}.json")
    if char_ngrams is not None:
        from benchmarks.char_ngrams import render as render_char_ngrams

        lines += render_char_ngrams(char_ngrams)
    mpnet = [r for r in (_load(results, f"features-mpnet{suffix}.json"),
                         _load(results, f"features-mpnet-reuters{suffix}.json")) if r is not None]
    mpnet_speed = _load(results, f"mpnet-speed{suffix}.json")
    if mpnet or mpnet_speed is not None:
        from benchmarks.features_report import render_mpnet

        lines += render_mpnet(mpnet, mpnet_speed)
    ray = _load(results, f"ray{suffix}.json")
    if ray is not None:
        from benchmarks.ray_encode import render as render_ray

        lines += render_ray(ray)
    serve = _load(results, f"serve{suffix}.json")
    if serve is not None:
        from benchmarks.serve import render as render_serve

        lines += render_serve(serve)
    finetune = _load(results, f"finetune{suffix}.json")
    if finetune is not None:
        from benchmarks.finetune import render as render_finetune

        lines += render_finetune(finetune) + [""]
    sweep = _load(results, f"sweep{suffix}.json")
    if sweep is not None:
        from benchmarks.sweep import render as render_sweep

        lines += render_sweep(sweep)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
