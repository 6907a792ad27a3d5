"""The co-occurrence rules file (JSON: settings, one line per label and per rule) and the GraphML export.

A rules file is plain data, safe to read from a stranger: every field is checked on the way in and
a bad file is one ``EmbedclfError`` line naming it. :class:`RulesFileMixin` gives
:class:`~embedclf.postprocess.rules.CooccurrenceRules` its ``to_json`` / ``from_json`` /
``save`` / ``load`` / ``save_graphml``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import networkx as nx

from embedclf import __version__
from embedclf.errors import EmbedclfError
from embedclf.io import atomic_write_bytes
from embedclf.postprocess.rule_inputs import check_names, check_settings, make_rule

FORMAT = "embedclf.cooccurrence-rules"


class RulesFileMixin:
    """Reading and writing fitted rules; the class it is mixed into provides the fitted attributes."""

    def to_json(self) -> str:
        """The rules as JSON text: settings, then one line per label and per rule (strongest first)."""
        self._check_fitted()
        head = {"format": FORMAT, "embedclf_version": __version__, "threshold": self.threshold,
                "min_support": self.min_support, "n_rows": self.n_rows_}
        if self.note_:
            head["note"] = self.note_
        labels = [{"name": n, "count": int(c)} for n, c in zip(self.label_names_, self.label_counts_)]
        parts = [f" {json.dumps(key)}: {json.dumps(value)}" for key, value in head.items()]
        for key, items in (("labels", labels), ("rules", self.rules_)):
            lines = ",\n".join(f"  {json.dumps(item, ensure_ascii=False)}" for item in items)
            parts.append(f' "{key}": [\n{lines}\n ]' if items else f' "{key}": []')
        return "{\n" + ",\n".join(parts) + "\n}\n"

    @classmethod
    def from_json(cls, text: str, source: str | None = None):
        where = source or "rules JSON"
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EmbedclfError(f"{where}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(document, dict) or document.get("format", FORMAT) != FORMAT:
            raise EmbedclfError(f"{where}: not an embedclf co-occurrence rules file")
        try:
            rules = cls(float(document["threshold"]), int(document["min_support"]))
            names = [str(label["name"]) for label in document["labels"]]
            counts = [int(label["count"]) for label in document["labels"]]
            found = [make_rule(str(r["antecedent"]), str(r["consequent"]), r["confidence"], r["support"], r["joint"])
                     for r in document["rules"]]
            n_rows = int(document.get("n_rows", 0))
            note = document.get("note")
            check_settings(rules.threshold, rules.min_support)
        except EmbedclfError as exc:
            raise EmbedclfError(f"{where}: {exc}") from None
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise EmbedclfError(f"{where}: malformed co-occurrence rules file ({type(exc).__name__}: {exc})") from None
        names = check_names(names, f"{where}: labels")
        unknown = sorted({r[end] for r in found for end in ("antecedent", "consequent")} - set(names))
        if unknown:
            raise EmbedclfError(f"{where}: rules name {len(unknown)} labels missing from its label list, "
                                f"e.g. {unknown[0]!r}")
        rules._set_fitted(names, counts, found, n_rows)
        rules.source_, rules.note_ = source, str(note) if note else None
        return rules

    def save(self, path: str | Path) -> None:
        write_file(path, self.to_json().encode("utf-8"))

    @classmethod
    def load(cls, path: str | Path):
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise EmbedclfError(f"{path}: no such rules file") from None
        except UnicodeDecodeError:
            raise EmbedclfError(f"{path}: not a co-occurrence rules file (not UTF-8 text)") from None
        except OSError as exc:
            raise EmbedclfError(f"{path}: cannot read ({exc.strerror})") from None
        return cls.from_json(text, source=str(path))

    def save_graphml(self, path: str | Path) -> None:
        buffer = io.BytesIO()
        nx.write_graphml(self.graph_, buffer)
        write_file(path, buffer.getvalue())


def write_file(path: str | Path, data: bytes) -> None:
    """Write ``data`` by an atomic rename; a failure is one line naming the file."""
    try:
        atomic_write_bytes(Path(path), data)
    except OSError as exc:
        raise EmbedclfError(f"{path}: cannot write ({exc.strerror})") from None
