"""Drawing co-occurrence rules to a PNG: the strongest rules as a graph, one component per box.

:class:`RulesPlotMixin` gives :class:`~embedclf.postprocess.rules.CooccurrenceRules` its ``plot``.
matplotlib is imported only when a drawing is asked for.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import networkx as nx
import numpy as np

from embedclf.postprocess.rules_file import write_file


class RulesPlotMixin:
    """``plot``; the class it is mixed into provides the fitted rules."""

    def plot(self, path: str | Path, top: int = 100) -> None:
        """A PNG of the ``top`` strongest rules: edge width and colour by confidence, node size by frequency."""
        self._check_fitted()
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        rules = self.rules_[:max(int(top), 0)]
        fig = Figure(figsize=(16, 12), dpi=120)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.set_axis_off()
        condition = f"P(B|A) ≥ {self.threshold}, support ≥ {self.min_support}"
        if not rules:
            ax.set_title(f"Label co-occurrence rules ({condition})", fontsize=16)
            why = self.note_ or f"no label pair reaches\n{condition}"
            ax.text(0.5, 0.5, f"No rules: {why}", ha="center", va="center", fontsize=28, color="0.35",
                    transform=ax.transAxes, wrap=True)
        else:
            counts = dict(zip(self.label_names_, self.label_counts_.tolist()))
            _draw_rules(fig, ax, rules, counts, float(self.threshold))
            shown = (f"strongest {len(rules)} of {len(self.rules_)}" if len(rules) < len(self.rules_)
                     else f"all {len(rules)}")
            ax.set_title(f"Label co-occurrence rules A → B ({condition}): {shown} rules; "
                         "node size = label frequency", fontsize=15)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        write_file(path, buffer.getvalue())


def _draw_rules(fig, ax, rules: list[dict], counts: dict[str, int], threshold: float) -> None:
    """Nodes sized by label count, edges coloured and widened by confidence, and a colour bar."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    graph = nx.DiGraph()
    graph.add_edges_from((r["antecedent"], r["consequent"]) for r in rules)
    biggest = max(max(counts[n] for n in graph), 1)
    sizes = [250 + 2250 * math.sqrt(counts[n] / biggest) for n in graph]
    confidence = np.array([r["confidence"] for r in rules])
    norm = Normalize(vmin=min(float(confidence.min()), threshold), vmax=1.0)
    if norm.vmin >= norm.vmax:
        norm.vmin = norm.vmax - 0.1
    cmap = colormaps["viridis_r"]
    pos = _layout(graph)
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_size=sizes, node_color="#dbe8f6",
                           edgecolors="#4a7bb0", linewidths=1.0)
    nx.draw_networkx_edges(graph, pos, ax=ax, node_size=sizes, width=0.6 + 3.4 * norm(confidence),
                           edge_color=[cmap(norm(c)) for c in confidence], arrows=True,
                           arrowstyle="-|>", arrowsize=16, connectionstyle="arc3,rad=0.12", alpha=0.85)
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=9,
                            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.5, pad=0.01, label="confidence P(B|A)")


def _layout(graph: nx.DiGraph) -> dict:
    """Kamada-Kawai per connected component (neighbours about one unit apart), components packed in rows.

    One spring layout of a graph with many small components squeezes each into a knot and leaves
    the middle empty; packing keeps every label readable with a hundred edges on one page.
    """
    components = sorted((sorted(c) for c in nx.weakly_connected_components(graph)), key=lambda c: (-len(c), c))
    boxes = []
    for nodes in components:
        if len(nodes) == 1:
            pos = np.zeros((1, 2))
        else:
            spread = nx.kamada_kawai_layout(graph.subgraph(nodes).to_undirected())
            pos = np.array([spread[n] for n in nodes])
            gaps = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
            np.fill_diagonal(gaps, np.inf)
            pos /= max(float(np.median(gaps.min(axis=1))), 1e-9)  # a typical node one unit from its nearest
        pos -= pos.min(axis=0)
        boxes.append((nodes, pos, pos.max(axis=0) + 1.2))  # 1.2: room for node circles and labels
    row_width = max(math.sqrt(sum(w * h for _, _, (w, h) in boxes) * 4 / 3), max(w for _, _, (w, _) in boxes))
    layout, x, y, row_height = {}, 0.0, 0.0, 0.0
    for nodes, pos, (width, height) in boxes:
        if x > 0 and x + width > row_width:
            x, y, row_height = 0.0, y - row_height, 0.0
        layout.update((n, p + (x, y - height)) for n, p in zip(nodes, pos))
        x, row_height = x + width, max(row_height, height)
    return layout
