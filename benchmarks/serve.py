"""Load test of ``embedclf serve`` over loopback: texts/s and latency at 1, 8 and 32 concurrent clients.

    python benchmarks/serve.py [--quick] [--seconds 60] [--threads N] [--infinity PATH/infinity_emb]

The default model (all-MiniLM-L6-v2, default settings: precision auto, no cache) is served by ``embedclf serve`` in a
subprocess on 127.0.0.1; a lean asyncio client in this process (C keep-alive connections over raw
streams, bodies prepared before the clock starts: the load generator shares the cores, and httpx cost
6 ms of CPU per request, more than the server's own work) keeps C requests in flight, one text per
request (the case dynamic batching exists for) and, at 32 clients, also 16 texts per request (OpenAI
clients commonly send lists); short texts (GoEmotions comments) and long ones (CFPB complaint
narratives, truncated at 256 tokens). Each cell is bounded in requests and seconds.

Measured in the same run, in this process before the servers start and again after they stop (the
report gives the mean of the two):
  offline     ``Encoder(cache=False).encode(texts)`` on the same distinct texts, texts/s of encoding
              (model loaded first): what ``embedclf encode`` does
  single      ``encoder.encode([text])`` one short text at a time: the in-process latency of one text

``--threads N`` sets torch's threads in both (``OMP_NUM_THREADS`` for the server): on a machine that
other work keeps busy, torch's default of one thread per core spins and makes single texts 5-10x slower.

``--infinity`` also runs infinity-emb (installed in a venv of its own: it pins sentence-transformers 3
and transformers 4) on the same model folder, torch fp32 on the CPU, through the same cells.

Targets: served texts/s at c=32 at least 0.8 x offline; the c=1 p50 of a short text within 2 x the
in-process single-text p50. Writes ``results/serve.json`` (``serve-quick.json`` with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "datasets"
CONCURRENCY = (1, 8, 32)
# enough requests at 32 clients for dozens of model calls per worker: a cell of a few calls measures its start
REQUESTS = {"short": {1: 200, 8: 800, 32: 2560}, "long": {1: 40, 8: 160, 32: 320}}
PER_REQUEST = 16  # the list cell: 32 clients, this many texts per request
LIST_REQUESTS = {"short": 160, "long": 32}


def load_texts(kind: str, n: int) -> list[str]:
    from embedclf.data import load_dataset

    if kind == "short":
        texts = load_dataset(DATA / "goemotions" / "train.tsv", ["text"], columns=["text", "labels", "id"]).texts
    else:
        texts = load_dataset(DATA / "cfpb-complaints" / "complaints.csv", ["Consumer complaint narrative"]).texts
    return list(dict.fromkeys(texts))[:n]


def offline(texts: dict[str, list[str]], singles: int) -> dict:
    from embedclf.encode.encoder import Encoder

    encoder = Encoder(cache=False, progress=False)
    encoder.encode(["warm up"] * 4)
    result = {}
    for kind, chunk in texts.items():
        cpu = time.process_time()
        encoder.encode(chunk)
        cpu = time.process_time() - cpu
        report = encoder.last_report
        tokens = encoder.token_counts(chunk)
        result[kind] = {"texts": len(chunk), "texts_per_second": round(report.texts_per_second, 1),
                        "cpu_ms_per_text": round(1000 * cpu / len(chunk), 2),
                        "tokens_per_text": round(float(np.minimum(tokens, encoder.max_length).mean()), 1)}
    latencies = []
    for text in texts["short"][:singles]:
        start = time.perf_counter()
        encoder.encode([text])
        latencies.append(time.perf_counter() - start)
    result["single_short"] = _latency(latencies)
    result["reference"] = encoder.encode(texts["short"][:8]).tolist()  # the served vectors are compared with these
    from embedclf.encode.backends import forget_loaded

    del encoder
    forget_loaded()
    return result


def _latency(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"n": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def start_server(command: list[str], port: int, log: Path, threads: int | None) -> subprocess.Popen:
    import httpx

    env = {**os.environ, "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1",
           **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    process = subprocess.Popen(command, cwd=ROOT, stderr=log.open("w"), stdout=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not get ready within 300 s")


def servers(port: int, infinity: str | None) -> dict[str, list[str]]:
    # the CFPB narratives go up to 22k characters: embedclf's default limit of 20k would refuse one
    commands = {"embedclf": [sys.executable, "-m", "embedclf", "serve", "--port", str(port), "--max-text-chars",
                             "100000"]}
    if infinity:
        from embedclf.encode.models import DEFAULT_MODEL, resolve_model

        commands["infinity-emb"] = [infinity, "v2", "--model-id", str(resolve_model(DEFAULT_MODEL).path), "--engine",
                                    "torch", "--device", "cpu", "--dtype", "float32", "--no-bettertransformer",
                                    "--batch-size", "32", "--host", "127.0.0.1", "--port", str(port), "--url-prefix",
                                    "/v1", "--log-level", "warning"]
    return commands


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far, all its threads (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load_test(url: str, texts: list[str], concurrency: int, requests: int, seconds: float, pid: int,
                    per_request: int = 1) -> dict:
    """``concurrency`` clients, ``per_request`` texts per request, until ``requests`` are answered or ``seconds`` pass."""
    import httpx

    from benchmarks.http_client import Connection

    host, port = url.split("//")[1].split(":")
    port = int(port)
    batches = [texts[i:i + per_request] for i in range(0, len(texts) - per_request + 1, per_request)]
    bodies = [json.dumps({"input": batch, "model": "m"}).encode() for batch in batches]
    connections = [await Connection.open(host, port) for _ in range(concurrency)]
    prepared = [[c.request(body) for body in bodies] for c in connections]
    latencies, failures, issued = [], 0, 0
    await asyncio.gather(*(connection.post(mine[0]) for connection, mine in zip(connections, prepared)))  # warm up
    calls_before = _metric(httpx.get(f"{url}/metrics").text, "embedclf_batch_texts_count")
    stop = time.perf_counter() + seconds

    async def client_loop(connection, mine):
        nonlocal issued, failures
        while issued < requests and time.perf_counter() < stop:
            request = mine[issued % len(mine)]
            issued += 1
            start = time.perf_counter()
            if await connection.post(request) == 200:
                latencies.append(time.perf_counter() - start)
            else:
                failures += 1

    start, cpu, own = time.perf_counter(), cpu_seconds(pid), time.process_time()
    await asyncio.gather(*(client_loop(c, mine) for c, mine in zip(connections, prepared)))
    wall, cpu, own = time.perf_counter() - start, cpu_seconds(pid) - cpu, time.process_time() - own
    for connection in connections:
        connection.close()
    metrics = httpx.get(f"{url}/metrics").text
    texts_served = len(latencies) * per_request
    return {"concurrency": concurrency, "texts_per_request": per_request, "requests": len(latencies),
            "failures": failures, "seconds": round(wall, 2), "texts_per_second": round(texts_served / wall, 1),
            "server_cpu_ms_per_text": round(1000 * cpu / max(1, texts_served), 2),
            "client_cpu_ms_per_text": round(1000 * own / max(1, texts_served), 2),
            "reconnects": sum(connection.reconnects for connection in connections),
            **_latency(latencies), "model_calls": _metric(metrics, "embedclf_batch_texts_count") - calls_before}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the requests")
    parser.add_argument("--seconds", type=float, default=60.0, help="time bound of each cell")
    parser.add_argument("--threads", type=int, default=None, help="torch threads, in the server and offline")
    parser.add_argument("--infinity", default=None, help="an infinity_emb executable: run it through the same cells")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    scale = 4 if args.quick else 1
    requests = {kind: {c: max(c * 2, n // scale) for c, n in cells.items()} for kind, cells in REQUESTS.items()}
    texts = {kind: load_texts(kind, max(cells.values())) for kind, cells in requests.items()}
    load_before = os.getloadavg()[0]
    baseline = offline(texts, singles=100 // scale)
    print(json.dumps({"offline": {k: v for k, v in baseline.items() if k != "reference"}}), flush=True)
    cells, exit_codes, difference = [], {}, {}
    for name, command in servers(free_port(), args.infinity).items():
        port = int(command[command.index("--port") + 1])
        log = ROOT / "benchmarks" / "results" / "serve-server.log"
        server = start_server(command, port, log, args.threads)
        try:
            served = __import__("httpx").post(f"http://127.0.0.1:{port}/v1/embeddings", timeout=120,
                                              json={"input": texts["short"][:8], "model": "m"}).json()["data"]
            difference[name] = float(np.abs(np.array([e["embedding"] for e in served])
                                            - np.array(baseline["reference"])).max())
            for kind in ("short", "long"):
                for concurrency, per in [(c, 1) for c in CONCURRENCY] + [(32, PER_REQUEST)]:
                    n_requests = requests[kind][concurrency] if per == 1 else max(32, LIST_REQUESTS[kind] // scale)
                    cell = asyncio.run(load_test(f"http://127.0.0.1:{port}", texts[kind], concurrency,
                                                 n_requests, args.seconds, server.pid, per))
                    cell |= {"server": name, "texts": kind,
                             "model_calls": cell["model_calls"] if name == "embedclf" else None}
                    cells.append(cell)
                    print(json.dumps(cell), flush=True)
        finally:
            server.terminate()
            exit_codes[name] = server.wait(timeout=120)
            log.unlink(missing_ok=True)
    import torch

    baseline.pop("reference")
    after = offline(texts, singles=100 // scale)  # again: the machine's load moves during a run
    after.pop("reference")
    for kind in ("short", "long"):
        baseline[kind] = baseline[kind] | {
            "runs_texts_per_second": [baseline[kind]["texts_per_second"], after[kind]["texts_per_second"]],
            "texts_per_second": round((baseline[kind]["texts_per_second"] + after[kind]["texts_per_second"]) / 2, 1),
            "cpu_ms_per_text": round((baseline[kind]["cpu_ms_per_text"] + after[kind]["cpu_ms_per_text"]) / 2, 2)}
    baseline["single_short_after"] = after["single_short"]
    result = {"model": "sentence-transformers/all-MiniLM-L6-v2", "device": "cpu", "cpus": os.cpu_count(),
              "torch_threads": torch.get_num_threads(),
              "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)], "offline": baseline,
              "cells": cells, "server_exit_code": exit_codes["embedclf"], "quick": args.quick,
              "max_abs_difference_to_offline": difference}
    if args.infinity:
        version = "import importlib.metadata as m; print(m.version('infinity-emb'))"
        result["infinity_version"] = subprocess.run([str(Path(args.infinity).parent / "python"), "-c", version],
                                                    capture_output=True, text=True).stdout.strip()
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"serve{'-quick' if args.quick else ''}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(render(result)))


def render(result: dict) -> list[str]:
    """The report's section: a table per text kind, then the two targets."""
    offline_ = result["offline"]
    lines = ["## Serving: `embedclf serve` under load", "",
             f"{result['model']} on the CPU ({result['cpus']} cores, load average {result['load_average'][0]} before, "
             f"{result['load_average'][1]} after), {result['torch_threads']} torch thread(s) in the server and offline, "
             "no cache; a lean asyncio client (raw keep-alive connections, bodies prepared in advance) in another "
             "process on the same machine keeps C requests of one text each (and, in the last cell of each kind, "
             f"of {PER_REQUEST} texts) in flight over loopback. Offline: `Encoder.encode` on the "
             "same distinct texts in one call, as `embedclf encode` does (`python benchmarks/serve.py`).", "",
             "| server | texts | clients | texts/request | requests | texts/s | × offline | p50 ms | p95 ms | p99 ms | texts per "
             "model call | server CPU ms/text | offline CPU ms/text ÷ server's |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cell in result["cells"]:
        base = offline_[cell["texts"]]
        calls = cell.get("model_calls")
        per_request = cell.get("texts_per_request", 1)
        per_call = f"{cell['requests'] * per_request / calls:.1f}" if calls else "–"
        lines.append(f"| {cell.get('server', 'embedclf')} | {cell['texts']} ({base['tokens_per_text']:.0f} tokens) | "
                     f"{cell['concurrency']} | {per_request} | "
                     f"{cell['requests']:,} | {cell['texts_per_second']:,.1f} | "
                     f"{cell['texts_per_second'] / base['texts_per_second']:.2f} | {cell['p50_ms']:.1f} | "
                     f"{cell['p95_ms']:.1f} | {cell['p99_ms']:.1f} | {per_call} | "
                     f"{cell['server_cpu_ms_per_text']:.1f} | {base['cpu_ms_per_text'] / cell['server_cpu_ms_per_text']:.2f} |")
    troubled = [c for c in result["cells"] if c.get("failures") or c.get("reconnects")]
    if troubled:
        lines += [""] + [f"- {c.get('server', 'embedclf')}, {c['texts']} texts, {c['concurrency']} clients, "
                         f"{c.get('texts_per_request', 1)} per request: {c.get('failures', 0)} failed request(s), "
                         f"{c.get('reconnects', 0)} connection(s) the server had closed while idle, opened again"
                         for c in troubled]
    lines += ["", "| texts | offline texts/s (before, after) | offline CPU ms/text |", "|---|---:|---:|"]
    lines += [f"| {kind} | {offline_[kind]['texts_per_second']:,.1f} ("
              f"{', '.join(f'{v:,.1f}' for v in offline_[kind].get('runs_texts_per_second', []))}) | "
              f"{offline_[kind]['cpu_ms_per_text']:.1f} |" for kind in ("short", "long")]
    single = offline_["single_short"]["p50_ms"]
    if "single_short_after" in offline_:
        single = (single + offline_["single_short_after"]["p50_ms"]) / 2
    ours = [c for c in result["cells"] if c.get("server", "embedclf") == "embedclf"]
    c1 = next(c for c in ours if c["texts"] == "short" and c["concurrency"] == 1)["p50_ms"]
    lines += ["", "Targets:", ""]
    for kind in ("short", "long"):
        for c32 in (c for c in ours if c["texts"] == kind and c["concurrency"] == 32):
            ratio = c32["texts_per_second"] / offline_[kind]["texts_per_second"]
            per = c32.get("texts_per_request", 1)
            lines.append(f"- served throughput at 32 clients / offline encode, {kind} texts, {per} text"
                         f"{'s' if per > 1 else ''} per request: **{ratio:.2f}** "
                         f"(target ≥ 0.8: {'met' if ratio >= 0.8 else 'not met'})")
    lines.append(f"- one short text at 1 client, p50: **{c1:.1f} ms** against {single:.1f} ms in-process "
                 f"(`encoder.encode([text])`), {c1 / single:.2f}× (target ≤ 2×: {'met' if c1 <= 2 * single else 'not met'})")
    lines.append(f"- the server stopped on SIGTERM with exit status {result['server_exit_code']}")
    for name, value in result.get("max_abs_difference_to_offline", {}).items():
        lines.append(f"- {name}'s vectors of 8 texts against offline `Encoder.encode`: largest difference {value:.1e}")
    lines += ["", "Why served short texts come closest to falling behind offline encoding: `embedclf encode` sorts a "
              "whole corpus by length and runs full batches of 32 on both threads, while a server sees one text per "
              "request and merges what has arrived (the texts per model call above). Two workers, one thread each, "
              "encode two groups at once, each taking its fair share of the texts in the server (those in the model "
              "included), so 32 one-text clients settle into two cohorts of 16; a worker still waits for its cohort "
              "to come back between groups, and every request costs the event loop its HTTP and JSON work (about "
              "0.26 ms of CPU per request, measured per thread; the two POST endpoints bypass FastAPI's routing). "
              "A BERT model runs without padding on the CPU, so a merged group of mixed lengths costs its real "
              "tokens. Long texts cost mostly their tokens, so they come closer. The load generator shares the same "
              "two cores: the CPU column (the server process's CPU time per text against offline's) leaves it and "
              "the machine's other load out of the comparison."]
    if result.get("infinity_version"):
        lines += ["", f"infinity-emb {result['infinity_version']} ran in a venv of its own with the same model "
                  "folder, `--engine torch --device cpu --dtype float32 --no-bettertransformer --batch-size 32`: "
                  "`pip install 'infinity-emb[server,torch]'` pins sentence-transformers < 4, transformers < 5 and "
                  "typer < 0.13 (embedclf has 6, 5 and a newer typer) and, unpinned, pulls torch 2.14.1 with CUDA 13 "
                  "wheels; with `torch==2.13.0` it takes the CPU wheel and runs offline."]
    return lines + [""]


if __name__ == "__main__":
    main()
