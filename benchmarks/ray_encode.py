"""Local engine vs Ray engine on one machine: texts/s and Ray's fixed costs.

    python benchmarks/ray_encode.py [--texts 2000] [--rounds 2] [--actors 2] [--quick]

The default model (``Encoder()`` defaults: all-MiniLM-L6-v2, mean pooling, max 256 tokens, fp32 on
CPU) encodes the first N GoEmotions training texts with nothing cached. Each measurement runs in a
fresh subprocess with a fresh cache directory; the variants alternate for ``--rounds`` rounds.

  local       Encoder(cache=<fresh>).encode(texts): texts/s over encoding only (model loaded first),
              and the wall time including the model load; torch's default threads (one per core)
  local-1t    the same with torch.set_num_threads(1)
  ray-B       encode_data(file, ..., EngineSettings('ray', actors=A)) with chunk_size=B on a local Ray
              instance it starts:
              start-up (ray.init), read+number, encode stage (actor start, model load, encoding,
              Parquet writes), import into the cache, total
  ray-tiny    the same on 8 texts: the fixed cost of a Ray run (start-up + actors + model loads)

Ray's steady texts/s is N / (encode stage of ray-B - encode stage of ray-tiny). Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GOEMOTIONS = ROOT.parent / "shared" / "datasets" / "goemotions" / "train.tsv"
COLUMNS = ["text", "labels", "id"]


def measure(variant: str, data: Path, actors: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="embedclf-bench-") as cache:
        return _measure(variant, data, actors, Path(cache))


def _measure(variant: str, data: Path, actors: int, cache: Path) -> dict:
    if variant.startswith("local"):
        import torch

        from embedclf.data import load_dataset
        from embedclf.encode.encoder import Encoder

        if variant == "local-1t":
            torch.set_num_threads(1)  # as a Ray actor with num_cpus=1 runs (Ray sets OMP_NUM_THREADS=1)

        texts = load_dataset(data, ["text"], columns=COLUMNS).texts
        start = time.perf_counter()
        encoder = Encoder(cache=cache)
        encoder.encode(texts)
        report = encoder.last_report
        return {"texts": report.texts, "texts_per_second": round(report.texts_per_second, 1),
                "encode_seconds": round(report.encode_seconds, 2),
                "wall_seconds": round(time.perf_counter() - start, 2),
                "torch_threads": torch.get_num_threads()}
    from embedclf.data import DataOptions
    from embedclf.encode.settings import EncoderSettings
    from embedclf.engines import EngineSettings, encode_data

    batch = int(variant.split("-")[1]) if variant != "ray-tiny" else 256
    start = time.perf_counter()
    result = encode_data(data, DataOptions(["text"], columns=COLUMNS), EncoderSettings(chunk_size=batch),
                         EngineSettings("ray", actors=actors), cache=cache)
    stages = {f"{name.replace('-', '')}_seconds": round(seconds, 2) for name, seconds in result.stages.items()}
    return {"texts": result.texts, "seconds": round(result.seconds, 2),
            "texts_per_second": round(result.texts_per_second, 1), **stages,
            "wall_seconds": round(time.perf_counter() - start, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--texts", type=int, default=None, help="texts encoded [2000; 500 with --quick]")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per variant [2; 1 with --quick]")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--variants", default=None, help="[local,ray-256,ray-1024,ray-tiny; local,ray-256,ray-tiny "
                                                         "with --quick]")
    parser.add_argument("--quick", action="store_true", help="a fast look, written to ray-quick.json")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.texts = args.texts or (500 if args.quick else 2000)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.variants = args.variants or ("local,ray-256,ray-tiny" if args.quick else "local,ray-256,ray-1024,ray-tiny")
    if args.variant:
        print(json.dumps(measure(args.variant, Path(args.data), args.actors)))
        return
    with tempfile.TemporaryDirectory(prefix="embedclf-bench-data-") as folder:
        run_all(args, Path(folder))


def run_all(args, folder: Path) -> None:
    rows = []
    lines = GOEMOTIONS.read_text(encoding="utf-8").splitlines(keepends=True)
    for name, n in (("main", args.texts), ("tiny", 8)):
        (folder / f"{name}.tsv").write_text("".join(lines[:n]), encoding="utf-8")
    for round_ in range(args.rounds):
        for variant in args.variants.split(","):
            data = folder / ("tiny.tsv" if variant == "ray-tiny" else "main.tsv")
            result = subprocess.run([sys.executable, __file__, "--variant", variant, "--data", str(data),
                                     "--actors", str(args.actors)], capture_output=True, text=True, cwd=ROOT)
            if result.returncode:
                sys.exit(result.stderr[-3000:])
            row = {"round": round_, "variant": variant, "load_avg_1m": round(os.getloadavg()[0], 2)}
            rows.append(row | json.loads(result.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    out = ROOT / "benchmarks" / "results" / ("ray-quick.json" if args.quick else "ray.json")
    out.write_text(json.dumps({"texts": args.texts, "actors": args.actors, "cpus": os.cpu_count(), "rows": rows},
                              indent=1))


def render(results: dict) -> list[str]:
    """The report's section: best of the rounds per variant."""
    best = {}
    for row in results["rows"]:
        if row["variant"] not in best or row["wall_seconds"] < best[row["variant"]]["wall_seconds"]:
            best[row["variant"]] = row
    lines = ["## Scale-out: local engine vs Ray on this machine", "",
             f"{results['texts']:,} GoEmotions texts, default model, nothing cached, {results['actors']} Ray actors on "
             f"{results['cpus']} CPUs (best of the rounds). On one 2-core machine Ray can only add overhead; it "
             "exists for N machines, where the encode stage divides by the number of actors.", "",
             "| variant | texts | wall s | encode stage s | texts/s (encode stage) | Ray start-up s |", "|---|---|---|---|---|---|"]
    for name, row in best.items():
        lines.append(f"| {name} | {row['texts']:,} | {row['wall_seconds']:.1f} | {row['encode_seconds']:.1f} | "
                     f"{row['texts'] / max(row['encode_seconds'], 1e-9):.0f} | {row.get('startup_seconds', 0):.1f} |")
    return lines + ["", "`ray-tiny` encodes 8 texts: its wall time is the fixed cost of a Ray run "
                    "(start-up, reading, starting actors and loading the model in each).", ""]


if __name__ == "__main__":
    main()
