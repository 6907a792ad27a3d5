"""``embedclf cooccur``: learn label co-occurrence rules and draw them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from embedclf.cli import app
from embedclf.cli.options import (Cache, Columns, data_options, KeepNaLabels, LabelCol, LabelNames, LabelSep, say,
                                  Strict, Task, TextCol)


@app.command()
def cooccur(
    train: Annotated[Path, typer.Argument(help="Labelled training data.")],
    out: Annotated[Path, typer.Option(help="Rules file (JSON) to write.")],
    threshold: Annotated[str, typer.Option(
        help="Minimum P(B | A) for a rule A -> B, or 'auto' to pick it on --valid with --model-dir.")] = "0.9",
    min_support: Annotated[int, typer.Option(min=1, help="Minimum documents with A.")] = 5,
    target: Annotated[Optional[str], typer.Option(help="Multi-label target to learn from [default: the first].")] = None,
    graph: Annotated[Optional[Path], typer.Option(help="Draw the strongest rules to this PNG.")] = None,
    graphml: Annotated[Optional[Path], typer.Option(help="Export the rule graph as GraphML.")] = None,
    top: Annotated[int, typer.Option(min=1, help="Rules drawn in --graph.")] = 100,
    valid: Annotated[Optional[Path], typer.Option(help="Validation data for --threshold auto.")] = None,
    model_dir: Annotated[Optional[Path], typer.Option(help="Fitted model whose validation micro-F1 --threshold auto "
                                                           "maximises.")] = None,
    cache: Cache = None,
    columns: Columns = None, text_col: TextCol = None, label_col: LabelCol = None, label_sep: LabelSep = None,
    label_names: LabelNames = None, task: Task = None, strict: Strict = False,
    keep_na_labels: KeepNaLabels = False,
):
    """Learn rules A -> B where P(B | A) >= threshold in TRAIN's labels; apply them with --cooccur."""
    from embedclf.postprocess.rules_command import rules_from_files

    options = data_options(columns, text_col, label_col, label_sep, label_names, task, strict,
                           keep_na_labels=keep_na_labels)
    rules, curve = rules_from_files(train, options, threshold=threshold, min_support=min_support, target=target,
                                    valid=valid, model_dir=model_dir, cache=cache, say=say)
    if curve is not None:
        typer.echo(format_curve(curve))
    say(rules.summary())
    for rule in rules.rules_[:10]:
        say(f"  {rule['antecedent']} -> {rule['consequent']}  {rule['confidence']:.3f} ({rule['joint']}/{rule['support']})")
    if len(rules.rules_) > 10:
        say(f"  ... {len(rules.rules_) - 10} more in {out}")
    rules.save(out)
    say(f"wrote {len(rules.rules_)} rules to {out}")
    if graphml is not None:
        rules.save_graphml(graphml)
        say(f"wrote GraphML to {graphml}")
    if graph is not None:
        rules.plot(graph, top=top)
        say(f"drew the strongest {min(top, len(rules.rules_))} rules to {graph}")


def format_curve(curve: list[dict]) -> str:
    lines = [f"{'threshold':>9}  {'rules':>5}  {'micro_f1':>8}  {'macro_f1':>8}"]
    for point in curve:
        shown = "none" if point["threshold"] is None else f"{point['threshold']:.2f}"
        lines.append(f"{shown:>9}  {point['n_rules']:>5}  {point['micro_f1']:>8.4f}  {point['macro_f1']:>8.4f}")
    return "\n".join(lines)
