"""``embedclf serve``: a real uvicorn server on 127.0.0.1 (in a thread), spoken to by the openai client and
httpx; its vectors and labels against ``embedclf encode`` and ``embedclf predict`` run as a user runs them."""

from __future__ import annotations

import asyncio
import base64
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from embedclf.data import DataOptions  # noqa: E402
from embedclf.encode.settings import EncoderSettings  # noqa: E402
from embedclf.serve.app import create_app  # noqa: E402
from embedclf.serve.service import Service  # noqa: E402
from embedclf.serve.settings import ServeSettings  # noqa: E402
from tests.conftest import sample_texts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TICKETS = DataOptions(("subject", "body"), ("topics", "priority"), label_sep="|")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_service(tiny_model, **changes) -> Service:
    return Service.prepare(EncoderSettings(tiny_model, device="cpu", precision="fp32", **changes))


@contextmanager
def serving(load, **settings):
    """A uvicorn server in a thread on a free port; always stopped (bounded) on the way out."""
    import uvicorn

    settings = ServeSettings(port=free_port(), **settings)
    app = create_app(load, settings)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        yield settings.url, app.state.embedclf
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive()


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{url}/health").status_code != 200:
        assert time.monotonic() < deadline, "the model did not load"
        time.sleep(0.05)


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "embedclf", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def cli_here(*args):
    """The command line run in this process (torch is already imported here: a subprocess costs ~10 s)."""
    from typer.testing import CliRunner

    from embedclf.cli import _register, app

    _register()
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
               or line.startswith(name + "{"))


def test_openai_client_gets_the_vectors_of_embedclf_encode(tiny_model, tmp_path):
    import openai

    texts = sample_texts(12, seed=3) + ["Zebras, 42 apples!"]
    data = tmp_path / "texts.csv"
    pd.DataFrame({"text": texts}).to_csv(data, index=False)
    cli_here("encode", data, "--model", tiny_model, "--device", "cpu", "--precision", "fp32", "--no-cache", "--out",
             tmp_path / "X.npy")
    expected = np.load(tmp_path / "X.npy")
    with serving(lambda: tiny_service(tiny_model).load()) as (url, _):
        wait_ready(url)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=30)
        floats = client.embeddings.create(model="tiny", input=texts[:7], encoding_format="float")
        packed = client.embeddings.create(model="tiny", input=texts[7:])  # the client asks for base64 by default
        single = client.embeddings.create(model="tiny", input=texts[-1], encoding_format="base64")
        models = client.models.list()
    served = np.array([e.embedding for e in floats.data + packed.data], dtype=np.float32)
    assert [e.index for e in floats.data] == list(range(7)) and [e.index for e in packed.data] == list(range(6))
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-5)
    asked = np.frombuffer(base64.b64decode(single.data[0].embedding), "<f4")  # asked for base64: left as sent
    np.testing.assert_allclose(asked, expected[-1], rtol=0, atol=1e-5)
    assert floats.model == tiny_model and floats.usage.prompt_tokens == floats.usage.total_tokens > 7
    assert [m.id for m in models.data] == [tiny_model]


@pytest.fixture(scope="module")
def tickets_model(tiny_model, tmp_path_factory):
    """A multi-output model folder (topics + priority, both multi-label) with co-occurrence rules saved in it."""
    from embedclf.encode.encoder import Encoder
    from embedclf.fit import fit_classifier
    from embedclf.heads import make_head
    from embedclf.postprocess.model_rules import learn_rules

    directory = tmp_path_factory.mktemp("tickets")
    data = TICKETS.load(ROOT / "examples" / "tickets.csv", require_labels=True)
    rules = learn_rules(data, threshold=0.5, min_support=2, target="topics")
    assert rules.rules_, "the test needs rules to apply"
    encoder = Encoder(tiny_model, cache=False, device="cpu", precision="fp32")
    classifier = fit_classifier(data, make_head("logreg", C=100.0), encoder, data_options=TICKETS, rules=rules)
    classifier.save(directory / "model")
    return directory / "model"


def test_predict_gives_the_labels_of_embedclf_predict(tiny_model, tickets_model, tmp_path):
    source = ROOT / "examples" / "tickets.csv"
    cli_here("predict", tickets_model, source, "--device", "cpu", "--no-cache", "--out", tmp_path / "p.csv")
    expected = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    texts = TICKETS.load(source).texts
    service = Service.prepare(EncoderSettings(device="cpu"), model_dir=tickets_model, given=frozenset({"device"}))
    with serving(service.load) as (url, _):
        wait_ready(url)
        response = httpx.post(f"{url}/v1/predict", json={"texts": texts}, timeout=30)
        capped = httpx.post(f"{url}/v1/predict", json={"texts": texts, "top_k": 1, "threshold": 0.0}, timeout=30)
        models = httpx.get(f"{url}/v1/models").json()
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert [r["index"] for r in rows] == list(range(len(texts)))
    label_columns = [c for c in expected.columns if c not in ("row", "id") and not c.startswith("p(")]
    assert "topics (added by rules)" in label_columns and "priority" in label_columns
    for column in label_columns:
        assert [sorted(r[column]) for r in rows] == [sorted(filter(None, v.split("|"))) for v in expected[column]]
    probabilities = [c for c in expected.columns if c.startswith("p(")]
    np.testing.assert_allclose([[r[c] for c in probabilities] for r in rows], expected[probabilities].to_numpy(),
                               rtol=0, atol=2e-5)
    # threshold 0 sets every label; top_k 1 keeps the most probable per target, then the rules add implied ones
    for row in capped.json()["data"]:
        for target in ("topics", "priority"):
            kept = set(row[target]) - set(row.get(f"{target} (added by rules)", []))
            best = max((c for c in probabilities if c.startswith(f"p({target}=")), key=lambda c: row[c])
            assert kept == {best[len(f"p({target}="):-1]}
    assert [m["id"] for m in models["data"]] == [tiny_model, "model"]


@pytest.mark.parametrize("features", ["hybrid", "tfidf"])
def test_a_model_fitted_on_tfidf_features_serves_its_own_features(tiny_model, tmp_path, features):
    """/v1/predict turns the batch's vectors and texts into the features the head was fitted on, as predict does."""
    model = tmp_path / "model"
    cli_here("fit", ROOT / "examples" / "tickets.csv", "--text-col", "subject", "--text-col", "body",
             "--label-col", "topics", "--label-sep", "|", "--head", "svm", "--features", features,
             "--out", model, "--model", tiny_model, "--device", "cpu", "--precision", "fp32", "--no-cache")
    source = ROOT / "examples" / "tickets.csv"
    cli_here("predict", model, source, "--device", "cpu", "--no-cache", "--out", tmp_path / "p.csv")
    expected = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    texts = DataOptions(("subject", "body"), ("topics",), label_sep="|").load(source).texts
    service = Service.prepare(EncoderSettings(device="cpu"), model_dir=model, given=frozenset({"device"}))
    with serving(service.load) as (url, _):
        wait_ready(url)
        response = httpx.post(f"{url}/v1/predict", json={"texts": texts}, timeout=30)
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert [sorted(r["topics"]) for r in rows] == [sorted(filter(None, v.split("|"))) for v in expected["topics"]]
    probabilities = [c for c in expected.columns if c.startswith("p(")]
    np.testing.assert_allclose([[r[c] for c in probabilities] for r in rows], expected[probabilities].to_numpy(),
                               rtol=0, atol=2e-5)


def test_limits_and_bad_requests_get_json_errors_and_the_server_stays_up(tiny_model):
    with serving(lambda: tiny_service(tiny_model).load(), max_texts_per_request=3, max_text_chars=40,
                 max_body_bytes=2048) as (url, _):
        wait_ready(url)
        post = lambda body, **kw: httpx.post(f"{url}/v1/embeddings", timeout=30, **({"json": body} | kw))  # noqa: E731
        cases = [
            (post({"input": ["a", "b", "c", "d"]}), 413, "--max-texts-per-request"),
            (post({"input": ["ok", "x" * 41]}), 413, "input[1]: 41 characters"),
            (post({"input": ["word " * 500]}), 413, "--max-body-bytes"),
            (httpx.post(f"{url}/v1/embeddings", content=b'{"input": ["unclosed"', timeout=30), 400, "not valid JSON"),
            (httpx.post(f"{url}/v1/embeddings", content=b'["a list"]', timeout=30), 400, "JSON object"),
            (post({"input": [1, 2]}), 422, "valid string"),
            (post({"input": []}), 422, "at least one text"),
            (post({"input": "a", "encoding_format": "int8"}), 422, "encoding_format"),
            (post({"input": "a", "dimensions": 7}), 422, "32-dimensional"),
            (httpx.post(f"{url}/v1/predict", json={"texts": ["a"]}, timeout=30), 404, "MODEL_DIR"),
            (httpx.get(f"{url}/v1/embeddings", timeout=30), 405, "takes POST, not GET"),
        ]
        for response, status, message in cases:
            assert response.status_code == status, response.text
            assert message in response.json()["error"]["message"]
        assert cases[-1][0].headers["allow"] == "POST"
        assert httpx.post(f"{url}/v1/embeddings/", json={"input": "a"}, timeout=30).status_code == 200
        assert post({"input": ["still", "up"]}).status_code == 200


def test_api_key_is_required_when_set(tiny_model):
    import openai

    with serving(lambda: tiny_service(tiny_model).load(), api_key="s3cret") as (url, _):
        wait_ready(url)  # /health needs no key
        assert httpx.post(f"{url}/v1/embeddings", json={"input": "a"}).status_code == 401
        wrong = httpx.post(f"{url}/v1/embeddings", json={"input": "a"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "API key" in wrong.json()["error"]["message"]
        assert httpx.get(f"{url}/v1/models").status_code == 401
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0).embeddings.create(model="m", input="a")
        good = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0).embeddings.create(model="m",
                                                                                                    input="a")
        assert len(good.data[0].embedding) == 32


def test_health_turns_ready_once_loaded_and_metrics_count_requests(tiny_model):
    release = threading.Event()
    service = tiny_service(tiny_model)

    def load():
        assert release.wait(30)
        return service.load()

    with serving(load) as (url, _):
        before = httpx.get(f"{url}/health")
        assert before.status_code == 503 and before.json()["status"] == "loading"
        early = httpx.post(f"{url}/v1/embeddings", json={"input": "too early"})
        assert early.status_code == 503 and "loading" in early.json()["error"]["message"]
        release.set()
        wait_ready(url)
        assert httpx.get(f"{url}/health").json() == {"status": "ready", "model": tiny_model, "classifier": None}
        for text in ("one", "two words"):
            assert httpx.post(f"{url}/v1/embeddings", json={"input": [text, "and more"]}).status_code == 200
        page = httpx.get(f"{url}/metrics")
    assert page.headers["content-type"].startswith("text/plain")
    text = page.text
    assert metric(text, 'embedclf_requests_total{endpoint="embeddings",status="200"}') == 2
    assert metric(text, 'embedclf_requests_total{endpoint="embeddings",status="503"}') == 1
    assert metric(text, 'embedclf_request_seconds_count{endpoint="embeddings"}') == 3
    assert metric(text, "embedclf_texts_encoded_total") == 4 and metric(text, "embedclf_batch_texts_count") == 2
    assert metric(text, "embedclf_tokens_total") > 4 and "embedclf_queue_texts 0.0" in text


def test_a_client_gone_before_its_whole_body_is_counted_and_the_server_stays_up(tiny_model):
    with serving(lambda: tiny_service(tiny_model).load()) as (url, _):
        wait_ready(url)
        host, port = url.split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:  # 40 bytes promised, 12 sent
            sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 40\r\n\r\n{\"input\": \"a")
        deadline = time.monotonic() + 10
        gone = 'embedclf_requests_total{endpoint="embeddings",status="499"}'
        while metric(httpx.get(f"{url}/metrics").text, gone) != 1:
            assert time.monotonic() < deadline, "the request of the client that left was not counted"
            time.sleep(0.05)
        assert httpx.post(f"{url}/v1/embeddings", json={"input": "still up"}).status_code == 200


def test_concurrent_requests_share_forward_passes_and_health_answers_meanwhile(tiny_model):
    service = tiny_service(tiny_model).load()
    service.workers = 1  # one group at a time: the second test below runs two
    expected = service.encoder.encode([f"text number {i}" for i in range(8)])
    gate, entered, original = threading.Event(), threading.Event(), service.work

    def work(texts, tokens, rows):  # the first group holds the model until the test opens the gate
        entered.set()
        assert gate.wait(30)
        return original(texts, tokens, rows)

    service.work = work

    async def scenario(url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            first = asyncio.create_task(client.post("/v1/embeddings", json={"input": "text number 0"}))
            await asyncio.to_thread(entered.wait, 30)
            assert (await client.get("/health")).status_code == 200  # the loop is free while the model works
            rest = [asyncio.create_task(client.post("/v1/embeddings", json={"input": [f"text number {i}"]}))
                    for i in range(1, 8)]
            for _ in range(300):
                if "embedclf_queue_texts 7.0" in (await client.get("/metrics")).text:
                    break
                await asyncio.sleep(0.02)
            gate.set()
            responses = await asyncio.gather(first, *rest)
            return responses, (await client.get("/metrics")).text

    with serving(lambda: service) as (url, _):
        wait_ready(url)
        responses, text = asyncio.run(scenario(url))
    assert all(r.status_code == 200 for r in responses)
    served = np.array([r.json()["data"][0]["embedding"] for r in responses], dtype=np.float32)
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-5)
    assert metric(text, "embedclf_batch_texts_count") == 2  # 8 requests, 2 calls of the model: 1, then 7 merged
    assert metric(text, "embedclf_batch_requests_sum") == 8
    assert metric(text, 'embedclf_batch_requests_bucket{le="8.0"}') - metric(
        text, 'embedclf_batch_requests_bucket{le="4.0"}') == 1


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])  # SIGINT is Ctrl-C
def test_a_signal_lets_the_request_in_flight_finish_then_exits_0(tiny_model, stop, tmp_path):
    import json
    import signal

    from embedclf.encode.cache import EmbeddingCache

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "embedclf", "serve", "--model", tiny_model, "--device", "cpu",
                                "--port", str(port), "--cache", tmp_path / "cache"], stderr=subprocess.PIPE,
                               text=True, cwd=ROOT)
    try:
        for line in process.stderr:
            if line.startswith("ready:"):
                break
        body = json.dumps({"input": ["half sent", "then finished"]}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
            time.sleep(0.5)  # the request is being read
            process.send_signal(getattr(signal, stop))
            time.sleep(0.5)
            sock.sendall(body[10:])
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        payload = json.loads(reply.split(b"\r\n\r\n", 1)[1])
        assert len(payload["data"]) == 2 and len(payload["data"][1]["embedding"]) == 32
        assert process.wait(timeout=60) == 0
        rest = process.stderr.read()
        assert "stopping" in rest and "stopped" in rest and "Traceback" not in rest
        [space] = EmbeddingCache(tmp_path / "cache").spaces()  # what it encoded was written on the way out
        assert (space.entries, space.shards) == (2, 1)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


@pytest.mark.parametrize("args, message", [
    (["--max-wait-ms", "-1"], "--max-wait-ms must be between 0 and 10000"),
    (["--port", "70000"], "--port must be an integer between 1 and 65535"),
    (["--max-texts-per-request", "0"], "--max-texts-per-request must be an integer of at least 1"),
    (["--model", "/nonexistent/model"], "/nonexistent/model"),
    (["{model_dir}", "--pooling", "cls"], "--pooling: the model folder"),
])
def test_bad_options_are_one_line_and_exit_2(args, message, tickets_model):
    result = cli("serve", *[a.replace("{model_dir}", str(tickets_model)) for a in args])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_busy_port_and_missing_extra_are_one_line_and_exit_2(tiny_model):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = cli("serve", "--model", tiny_model, "--port", taken.getsockname()[1])
    assert busy.returncode == 2 and "cannot listen on 127.0.0.1" in busy.stderr and "Traceback" not in busy.stderr
    code = "import sys; sys.modules['fastapi'] = None; sys.argv = ['embedclf', 'serve']; " \
           "from embedclf.cli import main; main()"
    missing = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "embedclf: error: fastapi is not installed; run: pip install 'embedclf[serve]'"


@pytest.mark.parametrize("seed, overhead, power", [(seed, 40, 1) for seed in range(4)] + [(4, 900, 2), (5, 900, 2)])
def test_length_runs_cut_a_group_into_the_cheapest_runs(seed, overhead, power):
    import itertools

    from embedclf.encode.batching import length_runs

    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, 120, size=9)
    runs = length_runs(tokens, overhead, power)
    assert sorted(np.concatenate(runs).tolist()) == list(range(9))  # every text once
    lengths = [sorted(tokens[run].tolist()) for run in runs]
    assert all(a[-1] <= b[0] for a, b in zip(lengths, lengths[1:]))  # shortest first, no overlap
    cost = sum(overhead + len(run) * max(run) ** power for run in lengths)
    ordered = sorted(tokens.tolist())
    cheapest = min(sum(overhead + (b - a) * ordered[b - 1] ** power for a, b in zip((0,) + cuts, cuts + (9,)))
                   for k in range(9) for cuts in itertools.combinations(range(1, 9), k))
    assert cost == cheapest <= overhead + 9 * max(ordered) ** power
    assert len(runs) > 1


@pytest.mark.parametrize("workers, groups", [(1, [8]), (2, [4, 4])])
def test_free_workers_split_what_waits_and_each_request_gets_its_own_rows(workers, groups):
    from embedclf.serve.batcher import Batcher

    sizes, both_in = [], threading.Barrier(workers, timeout=10)

    def work(texts, tokens, rows):
        sizes.append(len(texts))
        both_in.wait()  # with two workers, the groups are in the model at the same time
        return np.array([[float(t.split()[-1])] for t in texts], dtype=np.float32), None

    async def scenario():
        batcher = Batcher(work, batch_size=32, batch_tokens=2048, max_wait_ms=0, workers=workers)
        futures = [batcher.submit([f"text {i}"], np.array([3])) for i in range(8)]  # all waiting before the start
        batcher.start()
        outputs = await asyncio.gather(*futures)
        await batcher.stop()
        return outputs

    outputs = asyncio.run(scenario())
    assert sizes == groups
    assert [float(o.vectors[0, 0]) for o in outputs] == list(range(8))


def test_a_free_worker_takes_its_fair_share_counting_the_group_in_the_model():
    """2 texts in the model and 30 waiting: the free worker takes 16 and leaves 14 for the other, whose
    group ends first (taking all 30 made the two settle into cohorts of 2 and 30 under a closed loop)."""
    from embedclf.serve.batcher import Batcher

    sizes, released = [], [threading.Event(), threading.Event()]

    def work(texts, tokens, rows):
        sizes.append(len(texts))
        call = len(sizes) - 1
        if call:
            released[call - 1].set()
        if call < 2:
            released[call].wait(timeout=10)  # the first two groups stay in the model until the next one formed
        return np.zeros((len(texts), 1), dtype=np.float32), None

    async def scenario():
        batcher = Batcher(work, batch_size=32, batch_tokens=4096, max_wait_ms=0, workers=2)
        batcher.start()
        first = batcher.submit(["first", "request"], np.array([3, 3]))
        while batcher._encoding == 0:  # the first group is in the model
            await asyncio.sleep(0.001)
        rest = [batcher.submit([f"text {i}"], np.array([3])) for i in range(30)]
        await asyncio.gather(first, *rest)
        await batcher.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert sizes == [2, 16, 14]


def test_with_cache_the_service_and_the_cli_share_vectors(tiny_model, tmp_path):
    texts = sample_texts(30, seed=5)
    cache = tmp_path / "cache"
    service = Service.prepare(EncoderSettings(tiny_model, device="cpu", precision="fp32"), cache=str(cache))
    with serving(service.load) as (url, _):
        wait_ready(url)
        first = httpx.post(f"{url}/v1/embeddings", json={"input": texts[:6]}, timeout=30).json()
        assert service.encoder.last_report.encoded == 6
        again = httpx.post(f"{url}/v1/embeddings", json={"input": texts[:6][::-1]}, timeout=30).json()
        assert service.encoder.last_report.cached == 6 and service.encoder.last_report.encoded == 0  # from memory
        for text in texts[6:]:  # 24 more model calls, one text each
            httpx.post(f"{url}/v1/embeddings", json={"input": text}, timeout=30).raise_for_status()
        assert list(cache.glob("*/shards/*.npy")) == []  # held in memory until 4,096 texts, 30 s, or the end
    assert len(list(cache.glob("*/shards/*.npy"))) == 1  # the shutdown wrote them, as one shard
    served = np.array([e["embedding"] for e in first["data"]], dtype=np.float32)
    np.testing.assert_array_equal(np.array([e["embedding"] for e in again["data"]], np.float32)[::-1], served)
    data = tmp_path / "texts.csv"
    pd.DataFrame({"text": texts}).to_csv(data, index=False)
    result = cli_here("encode", data, "--model", tiny_model, "--device", "cpu", "--precision", "fp32", "--cache",
                      cache, "--out", tmp_path / "X.npy")
    assert f"{len(texts)} cached, 0 encoded" in result.output  # the CLI finds what the service stored
    np.testing.assert_array_equal(np.load(tmp_path / "X.npy")[:6], served)
    cli_here("encode", data, "--model", tiny_model, "--device", "cpu", "--precision", "fp32", "--no-cache", "--out",
             tmp_path / "fresh.npy")
    np.testing.assert_allclose(np.load(tmp_path / "X.npy"), np.load(tmp_path / "fresh.npy"), rtol=0, atol=1e-5)


def test_a_failing_model_call_fails_its_requests_only(tiny_model):
    service = tiny_service(tiny_model).load()
    original, calls = service.work, []

    def work(texts, tokens, rows):  # the first call fails, as an out-of-memory forward pass would
        calls.append(len(texts))
        if len(calls) == 1:
            raise RuntimeError("forward pass failed")
        return original(texts, tokens, rows)

    service.work = work
    with serving(lambda: service) as (url, _):
        wait_ready(url)
        failed = httpx.post(f"{url}/v1/embeddings", json={"input": "first"}, timeout=30)
        assert failed.status_code == 500 and "forward pass failed" in failed.json()["error"]["message"]
        assert httpx.post(f"{url}/v1/embeddings", json={"input": "second"}, timeout=30).status_code == 200
        assert httpx.get(f"{url}/health").status_code == 200


def test_passes_take_one_thread_when_small_and_their_workers_share_otherwise(tiny_model, monkeypatch):
    import torch

    from embedclf.serve import service as service_module

    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        service = tiny_service(tiny_model).load()
        assert service.workers == 2
        seen = []
        encode = service.encoder.encode
        monkeypatch.setattr(service.encoder, "encode", lambda texts: seen.append(torch.get_num_threads()) or encode(texts))
        monkeypatch.setattr(service_module, "SMALL_PASS_TOKENS", 100)  # 3 short texts under it, 4 long ones over
        texts = ["one short text"] * 3
        small, _ = service.work(texts, service.token_counts(texts), np.array([], dtype=np.int64))
        long_texts = [" ".join(sample_texts(30, seed=1))] * 4  # 4 x the max length of 128 tokens
        service.work(long_texts, service.token_counts(long_texts), np.array([], dtype=np.int64))
        assert seen == [1, 2] and torch.get_num_threads() == 4  # half of 4 each; all threads again after a pass
        np.testing.assert_allclose(small, service.encoder.encode(texts), atol=1e-6)
    finally:
        torch.set_num_threads(before)


def test_two_workers_encode_two_groups_at_once_and_answer_each_request_its_own(tiny_model):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        service = tiny_service(tiny_model).load()
    finally:
        torch.set_num_threads(before)
    assert service.workers == 2
    texts = [f"text number {i}" for i in range(6)]
    expected = service.encoder.encode(texts)
    both, original, calls, first_in = threading.Barrier(2, timeout=30), service.work, [], threading.Event()

    def work(texts, tokens, rows):  # the first two groups go on only once both are in a worker
        calls.append(len(texts))
        first_in.set()
        if len(calls) <= 2:
            try:
                both.wait()
            except threading.BrokenBarrierError:  # one worker: the first group waited alone, in vain
                pass
        return original(texts, tokens, rows)

    service.work = work

    async def scenario(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            first = asyncio.create_task(client.post("/v1/embeddings", json={"input": texts[0]}))
            assert await asyncio.to_thread(first_in.wait, 30)  # the first group holds one worker
            rest = await asyncio.gather(*(client.post("/v1/embeddings", json={"input": text}) for text in texts[1:]))
            return [await first, *rest]

    with serving(lambda: service) as (url, _):
        wait_ready(url)
        responses = asyncio.run(scenario(url))
    assert not both.broken and len(calls) >= 2  # two groups were in the model at the same time
    assert all(r.status_code == 200 for r in responses)
    served = np.array([r.json()["data"][0]["embedding"] for r in responses], dtype=np.float32)
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-5)


def test_embeddings_body_writes_float32_exactly_and_shortest():
    import json

    from embedclf.serve.schemas import embeddings_body

    vectors = np.random.default_rng(0).standard_normal((3, 384)).astype(np.float32)
    body = embeddings_body(vectors, 7, "m", "float")
    parsed = json.loads(body)
    back = np.array([row["embedding"] for row in parsed["data"]], dtype=np.float32)
    np.testing.assert_array_equal(back, vectors)  # every float32 comes back bit for bit
    assert [row["index"] for row in parsed["data"]] == [0, 1, 2] and parsed["usage"]["total_tokens"] == 7
    assert len(body) < 3 * 384 * 13  # float32's shortest digits, not float64's 17
