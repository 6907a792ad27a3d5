"""A sweep's leaderboard: ranked records as CSV, Markdown and a picture of the metric by configuration."""

from __future__ import annotations

from pathlib import Path

from embedclf.sweep.metrics import LOWER_IS_BETTER, metric_key, summary_metrics

CSV, MARKDOWN, PICTURE = "leaderboard.csv", "leaderboard.md", "leaderboard.png"
SHOWN = 40  # configurations in the picture


def ranked(records: list[dict]) -> list[dict]:
    """Scored records best first (the score is the metric, negated where lower is better); on a tie the simpler
    decision (no rules, then the fixed threshold) and the faster fit first."""
    def order(record):
        config = record["configuration"]
        simpler = (config["rule_threshold"] is not None, config["thresholds"] != "fixed")
        return -record["score"], simpler, record["fit_seconds"], record["key"]

    return sorted((r for r in records if r["status"] == "ok"), key=order)


def leaderboard_frame(records: list[dict], metric: str):
    """One row per configuration, best first, failed ones last with their reason."""
    import pandas as pd

    key = metric_key(metric)
    rows = []
    for rank, record in enumerate(ranked(records), 1):
        config = record["configuration"]
        score = -record["score"] if key in LOWER_IS_BETTER else record["score"]
        rows.append({"rank": rank, "configuration": record["key"], "head": config["head"],
                     "features": _features(config), "thresholds": config["thresholds"],
                     "rules": config["rule_threshold"], metric: score,
                     **{k: v for k, v in summary_metrics(record["metrics"]).items() if k != key},
                     "fit_seconds": record["fit_seconds"],
                     "predict_ms_per_1k": record["predict_ms_per_1k"], "n_rules": record["n_rules"],
                     "folds": record["folds"], "status": "ok", "error": ""})
    for record in records:
        if record["status"] != "ok":
            config = record["configuration"]
            rows.append({"rank": None, "configuration": record["key"], "head": config["head"],
                         "features": _features(config), "thresholds": config["thresholds"],
                         "rules": config["rule_threshold"],
                         "status": "failed", "error": record["error"]})
    frame = pd.DataFrame(rows)
    for column in ("rank", "n_rules", "folds"):  # counts, blank on failed rows
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    return frame


def write_leaderboard(out: str | Path, records: list[dict], metric: str) -> tuple[Path, Path, Path]:
    """``leaderboard.csv``, ``leaderboard.md`` and ``leaderboard.png`` in ``out``, each written atomically."""
    from embedclf.io import atomic_write_text, write_table

    out = Path(out)
    frame = leaderboard_frame(records, metric)
    write_table(frame, out / CSV)
    atomic_write_text(out / MARKDOWN, markdown(frame, metric))
    plot_leaderboard(frame, metric, out / PICTURE)
    return out / CSV, out / MARKDOWN, out / PICTURE


def markdown(frame, metric: str) -> str:
    """The leaderboard as a Markdown table: metrics to 4 places, seconds to 2, the failures' reasons last."""
    shown = [c for c in frame.columns if c not in ("head", "features", "thresholds", "rules", "folds")]
    lines = [f"# Sweep leaderboard, ranked by validation {metric}", "",
             "| " + " | ".join(shown) + " |", "|" + "|".join("---:" if c not in ("configuration", "status", "error")
                                                            else "---" for c in shown) + "|"]
    for row in frame.to_dict("records"):
        lines.append("| " + " | ".join(_cell(column, row.get(column)) for column in shown) + " |")
    return "\n".join(lines) + "\n"


def _cell(column: str, value) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.2f}" if column in ("fit_seconds", "predict_ms_per_1k") else f"{value:.4f}"
    return str(value).replace("|", "\\|")


def plot_leaderboard(frame, metric: str, path: Path) -> None:
    """Horizontal bars of the metric for the best configurations, one colour per head, best on top."""
    import io

    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from embedclf.io import atomic_write_bytes

    scored = frame[frame["status"] == "ok"].head(SHOWN) if len(frame) else frame
    fig = Figure(figsize=(10, 1.2 + 0.28 * max(len(scored), 1)), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if len(scored):
        heads = list(dict.fromkeys(scored["head"]))
        colours = {h: colormaps["tab10"](i % 10) for i, h in enumerate(heads)}
        positions = range(len(scored))[::-1]
        ax.barh(list(positions), scored[metric], color=[colours[h] for h in scored["head"]])
        ax.set_yticks(list(positions), [_short(c) for c in scored["configuration"]], fontsize=7)
        low, high = float(scored[metric].min()), float(scored[metric].max())
        ax.set_xlim(max(0.0, low - (high - low) * 0.5 - 0.01), high + (high - low) * 0.05 + 0.01)
        for y, value in zip(positions, scored[metric]):
            ax.text(value, y, f" {value:.3f}", va="center", fontsize=6)
        ax.legend(handles=[Rectangle((0, 0), 1, 1, color=colours[h]) for h in heads], labels=heads,
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, title="head", title_fontsize=7)
        ax.set_ylim(-0.6, len(scored) - 0.4)
    else:
        ax.text(0.5, 0.5, "no configuration was scored", ha="center", va="center", transform=ax.transAxes)
    total = int((frame["status"] == "ok").sum()) if len(frame) else 0
    ax.set_title(f"Validation {metric} by configuration (best {len(scored)} of {total})", fontsize=10)
    ax.set_xlabel(f"validation {metric}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def _features(config: dict) -> str:
    weight, ngrams = config.get("tfidf_weight"), config.get("tfidf_ngrams")
    details = ([f"tfidf_weight {weight:g}"] if weight is not None else []) + (
        [f"{ngrams} n-grams"] if ngrams not in (None, "word") else [])
    return f"{config['features']} ({', '.join(details)})" if details else config["features"]


def _short(key: str) -> str:
    """A configuration key without its ``features=embedding`` part, for an axis label."""
    for long, short in ((" | features=embedding", ""), (" | features=", " | "), ("tfidf_weight=", "w"),
                        (" ngrams=word+char", " +char"), ("thresholds=", "thr "), ("rules=", "rules ")):
        key = key.replace(long, short)
    return key
