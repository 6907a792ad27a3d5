"""A sweep's folder on disk: what it was run on (``sweep.json``) and a record per configuration (``results.jsonl``).

Every finished configuration is added by rewriting ``results.jsonl`` through a temporary file and a
rename, so a sweep killed at any moment leaves a file of whole records; ``--resume`` reads it and
skips their configurations. ``sweep.json`` holds what the records depend on (data files' hashes,
data options, encoder space, split); resuming with other inputs is refused rather than mixing them.
"""

from __future__ import annotations

import json
from pathlib import Path

from embedclf.errors import EmbedclfError
from embedclf.io import atomic_write_text

RESULTS = "results.jsonl"
RECORD = "sweep.json"


class SweepFolder:
    """The records of one sweep folder, kept in memory and on disk together."""

    def __init__(self, out: str | Path, signature: dict, resume: bool):
        self.out = Path(out)
        self.path = self.out / RESULTS
        self.records: list[dict] = []
        recorded = self.out / RECORD
        if self.path.exists() or recorded.exists():
            if not resume:
                raise EmbedclfError(f"{self.out} already holds a sweep; add --resume to continue it, or choose "
                                    "another --out")
            self._check_signature(recorded, signature)
            self.records = self._read()
        elif resume:
            raise EmbedclfError(f"{self.out}: no sweep to resume (no {RESULTS}); drop --resume")
        self.signature = signature

    def start(self) -> None:
        atomic_write_text(self.out / RECORD, json.dumps(self.signature, indent=2, sort_keys=True))
        if not self.path.exists():
            atomic_write_text(self.path, "")

    @property
    def done(self) -> set[str]:
        return {record["key"] for record in self.records}

    def add(self, records: list[dict]) -> None:
        self.records += records
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records))

    def _read(self) -> list[dict]:
        records = []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        except (OSError, UnicodeDecodeError) as exc:
            raise EmbedclfError(f"{self.path}: cannot read ({exc})") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                record["key"]
            except (ValueError, KeyError, TypeError):
                raise EmbedclfError(f"{self.path}: line {number} is not a sweep record; remove it to resume") from None
            records.append(record)
        return records

    def _check_signature(self, recorded: Path, signature: dict) -> None:
        try:
            before = json.loads(recorded.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise EmbedclfError(f"{recorded}: missing or unreadable; cannot tell what the sweep ran on") from None
        changed = sorted(k for k in set(before) | set(signature) if before.get(k) != signature.get(k))
        if changed:
            raise EmbedclfError(f"{self.out} was swept with other {', '.join(changed)}; --resume needs the same "
                                "data, data options, encoder and split (or choose another --out)")
