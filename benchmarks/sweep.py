"""``embedclf sweep`` on GoEmotions: the default grid and the MLP grid, wall time, peak memory, best on test.

Each grid runs as its own ``embedclf sweep`` process (train.tsv, validation on dev.tsv, ``--jobs``),
its memory sampled over the whole process tree (the joblib workers included); the best
configuration's folder is then evaluated on test.tsv and compared with the best single ``fit`` of
``results/accuracy.json``. Run it from a warm cache (``--cache``): a cold one adds the encoding of
43k texts (several minutes on a 2-core CPU), which the figures would then include (the JSON says
how many texts were encoded). ``--train-rows N`` sweeps on the first N training rows instead.

    python benchmarks/sweep.py --cache cache [--grids default,mlp] [--jobs 2] [--train-rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GO = ROOT.parent / "shared" / "datasets" / "goemotions"
DATA = ["--columns", "text,labels,id", "--text-col", "text", "--label-col", "labels", "--label-sep", ",",
        "--label-names", str(GO / "labels.txt")]


def tree_peak(process: subprocess.Popen, every: float = 0.2) -> dict:
    """Sample the resident memory of ``process`` and all its descendants until it exits; the peak sum, in MB."""
    import psutil

    peak = {"rss_mb": 0.0}

    def sample():
        root = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                total = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                peak["rss_mb"] = max(peak["rss_mb"], total / 2**20)
            except psutil.Error:
                pass
            time.sleep(every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    return peak


def run_measured(command: list[str]) -> tuple[float, float, str]:
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    peak = tree_peak(process)
    _, stderr = process.communicate()
    seconds = time.perf_counter() - start
    if process.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    return seconds, peak["rss_mb"], stderr


def sweep_grid(grid: str, train: Path, cache: str, jobs: int, work: Path, model: list[str]) -> dict:
    out = work / grid
    command = [sys.executable, "-m", "embedclf", "sweep", str(train), *DATA, "--valid", str(GO / "dev.tsv"),
               "--grid", grid, "--jobs", str(jobs), "--out", str(out), "--cache", cache, *model]
    seconds, peak_mb, stderr = run_measured(command)
    encoded = sum(int(n.replace(",", "")) for n in re.findall(r"([\d,]+) encoded", stderr))
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ok = sorted((r for r in records if r["status"] == "ok"), key=lambda r: -r["score"])
    report_path = work / f"{grid}-test.json"
    evaluate = [sys.executable, "-m", "embedclf", "evaluate", str(out / "best"), str(GO / "test.tsv"),
                "--report", str(report_path), "--cache", cache]
    subprocess.run(evaluate, cwd=ROOT, check=True, capture_output=True)
    test = json.loads(report_path.read_text())["targets"]["labels"]
    manifest = json.loads((out / "best" / "model.json").read_text())
    return {"grid": grid, "configurations": len(records), "heads": len({fit_key(r) for r in records}),
            "failed": len(records) - len(ok), "wall_seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb),
            "texts_encoded": encoded, "head_fit_seconds": round(sum({fit_key(r): r["fit_seconds"] for r in ok}.values()), 1),
            "best": ok[0]["key"], "best_validation_micro_f1": ok[0]["metrics"]["labels"]["micro_f1"],
            "best_refit_seconds": manifest["info"].get("fit_seconds"),
            "test": {k: test[k] for k in ("micro_f1", "macro_f1", "weighted_f1", "samples_f1")},
            "top5": [{"key": r["key"], "micro_f1": r["metrics"]["labels"]["micro_f1"],
                      "macro_f1": r["metrics"]["labels"]["macro_f1"], "fit_seconds": r["fit_seconds"]}
                     for r in ok[:5]]}


def fit_key(record: dict) -> str:
    """The head and its feature set: what one fit serves (its threshold modes and rules cost no fit)."""
    return " | ".join(record["key"].split(" | ")[:2])


def best_single_fit() -> dict | None:
    """The committed accuracy report's best GoEmotions row (by test micro-F1)."""
    path = ROOT / "benchmarks" / "results" / "accuracy.json"
    if not path.exists():
        return None
    rows = [r for r in json.loads(path.read_text())["rows"]
            if r["dataset"].startswith("GoEmotions") and "baseline" not in r["method"]]
    best = max(rows, key=lambda r: r["targets"]["labels"]["micro_f1"] or 0)
    return {"method": best["method"], "thresholds": best["thresholds"], "rules": best["rules"],
            "micro_f1": best["targets"]["labels"]["micro_f1"], "macro_f1": best["targets"]["labels"]["macro_f1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=str(ROOT / "cache"))
    parser.add_argument("--grids", default="default,mlp")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--train-rows", type=int, default=None, help="sweep on the first N rows of train.tsv")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sweep.json"))
    parser.add_argument("--model", default=None, help="another encoder (a smoke test with a small model)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as scratch:
        work, train = Path(scratch), GO / "train.tsv"
        if args.train_rows:
            train = work / "train.tsv"
            lines = (GO / "train.tsv").read_text(encoding="utf-8").splitlines()[:args.train_rows]
            train.write_text("\n".join(lines) + "\n", encoding="utf-8")
        model = ["--model", args.model] if args.model else []
        runs = [sweep_grid(grid, train, args.cache, args.jobs, work, model) for grid in args.grids.split(",")]
    result = {"train_rows": args.train_rows or 43410, "valid": "dev.tsv (5,426)", "test": "test.tsv (5,427)",
              "jobs": args.jobs, "cpus": os.cpu_count(), "load_average_before": round(load, 2), "runs": runs,
              "best_single_fit": best_single_fit()}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(render(result)))


def render(result: dict) -> list[str]:
    """The report's section."""
    rows = "" if result["train_rows"] == 43410 else f" (the first {result['train_rows']:,} training rows)"
    lines = ["## Sweep (`embedclf sweep`)", "",
             f"GoEmotions train{rows}, validation on dev, `--jobs {result['jobs']}` on {result['cpus']} CPUs "
             f"(load average {result['load_average_before']} when it started); each grid one `embedclf sweep` process, "
             "peak memory summed over it and its joblib workers; the best configuration refitted on train and "
             "evaluated on test. `python benchmarks/sweep.py`.", "",
             "| grid | configurations (heads) | failed | texts encoded | wall time | peak memory | best configuration "
             "| validation micro-F1 | test micro-F1 | test macro-F1 |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for run in result["runs"]:
        best = run["best"].replace(" | features=embedding", "").replace("|", "\\|")
        lines.append(f"| {run['grid']} | {run['configurations']} ({run['heads']}) | {run['failed']} | "
                     f"{run['texts_encoded']:,} | {run['wall_seconds'] / 60:.1f} min | {run['peak_rss_mb']:,} MB | "
                     f"{best} | {run['best_validation_micro_f1']:.4f} | {run['test']['micro_f1']:.4f} | "
                     f"{run['test']['macro_f1']:.4f} |")
    best = result.get("best_single_fit")
    if best:
        lines += ["", f"Best single `fit` in the accuracy report: {best['method']}, {best['thresholds']} thresholds, "
                      f"test micro-F1 {best['micro_f1']:.4f}, macro-F1 {best['macro_f1']:.4f}."]
    return lines + [""]


if __name__ == "__main__":
    main()
