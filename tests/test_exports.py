"""The per-user export store: where it is, how entries are keyed, built atomically and once under a lock
(threads and processes), listed, selected and cleared."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from embedclf.encode.exports import ENTRY_FILE, ExportStore, entry_name, sample_hash, store_root

ROOT = Path(__file__).resolve().parents[1]
FP = "ab" * 32


def test_store_root_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(tmp_path / "mine"))
    assert store_root() == tmp_path / "mine" and ExportStore().root == tmp_path / "mine"
    monkeypatch.delenv("EMBEDCLF_EXPORTS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert store_root() == tmp_path / "xdg" / "embedclf" / "exports"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert store_root() == tmp_path / "home" / ".cache" / "embedclf" / "exports"


def test_entry_names_key_model_backend_recipe_and_sample():
    names = {entry_name(FP, "onnx", "fp32-opset17"), entry_name(FP, "onnx", "int8-v2"),
             entry_name(FP, "openvino", "int8-v2"), entry_name("cd" * 32, "onnx", "int8-v2"),
             entry_name(FP, "openvino", "int8-v2", sample_hash(["a", "b"])),
             entry_name(FP, "openvino", "int8-v2", sample_hash(["a", "c"]))}
    assert len(names) == 6
    assert sample_hash(["ab", "c"]) != sample_hash(["a", "bc"]), "texts are hashed one by one"
    assert entry_name(FP, "onnx", "int8-v2") == f"{FP[:16]}-onnx-int8-v2"


def test_a_failed_build_leaves_nothing_and_a_good_one_is_complete(tmp_path):
    store = ExportStore(tmp_path / "s")

    def broken(folder):
        (folder / "model.bin").write_bytes(b"half")
        raise RuntimeError("killed mid-export")

    with pytest.raises(RuntimeError):
        store.ensure("x", broken, {"fingerprint": FP})
    assert store.find("x") is None and sorted(p.name for p in store.root.iterdir()) == [".locks"]

    def good(folder):
        (folder / "model.bin").write_bytes(b"whole")
        return {"precision": "fp32"}

    entry = store.ensure("x", good, {"fingerprint": FP, "model": "m"})
    assert (entry.path / "model.bin").read_bytes() == b"whole"
    recorded = json.loads((entry.path / ENTRY_FILE).read_text())
    assert recorded.pop("build_seconds") >= 0
    assert recorded == {"fingerprint": FP, "model": "m", "precision": "fp32"}
    assert store.ensure("x", broken).meta["precision"] == "fp32", "found, not built again"


def test_threads_build_an_entry_once(tmp_path):
    store, calls = ExportStore(tmp_path / "s"), []

    def slow(folder):
        calls.append(folder)
        time.sleep(0.3)
        (folder / "model.bin").write_bytes(b"x")

    threads = [threading.Thread(target=store.ensure, args=("x", slow, {"fingerprint": FP})) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and store.find("x") is not None


def test_two_processes_build_an_entry_once(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from embedclf.encode.exports import ExportStore

        def build(folder):
            with open({str(tmp_path / "builds.log")!r}, "a") as log:
                log.write(sys.argv[1] + "\\n")
            time.sleep(1.0)
            (folder / "model.bin").write_bytes(b"x" * 100)

        entry = ExportStore({str(tmp_path / "s")!r}).ensure("x", build, {{"fingerprint": "f"}})
        print(entry.path, (entry.path / "model.bin").stat().st_size)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert len((tmp_path / "builds.log").read_text().split()) == 1
    assert {out.strip() for out, _ in outputs} == {f"{tmp_path / 's' / 'x'} 100"}


def test_entries_select_and_clear(tmp_path):
    store = ExportStore(tmp_path / "s")

    def build(folder):
        (folder / "w").write_bytes(b"\0" * 2048)

    for name, fp, model in (("a", FP, "org/minilm"), ("b", FP, "org/minilm"), ("c", "cd" * 32, "other")):
        store.ensure(name, build, {"fingerprint": fp, "model": model})
    (store.root / "incomplete").mkdir()  # no entry.json: not an entry
    assert [e.path.name for e in store.entries()] == ["a", "b", "c"]
    assert all(e.size_bytes > 2048 for e in store.entries())
    assert [e.path.name for e in store.select("minilm")] == ["a", "b"]  # the name's last part
    assert [e.path.name for e in store.select("cdcdcd")] == ["c"]  # a fingerprint prefix
    assert store.select("cd") == [], "a prefix shorter than 6 matches nothing"
    assert [e.path.name for e in store.select("nope", fingerprints=[FP])] == ["a", "b"]
    assert [e.path.name for e in store.clear("other")] == ["c"]
    assert [e.path.name for e in store.entries()] == ["a", "b"]
    assert len(store.clear()) == 2 and store.entries() == []


def test_a_new_cache_directory_does_not_hash_the_model_again(tiny_model, tmp_path, monkeypatch):
    """Model fingerprints are memoised in the store (per machine), not in each cache directory."""
    import embedclf.encode.models as models
    from embedclf.encode.encoder import Encoder

    first = Encoder(tiny_model, cache=tmp_path / "a", precision="fp32").settings.ref.fingerprint
    assert first in json.loads((store_root() / "fingerprints.json").read_text()).values()
    assert not list((tmp_path / "a").glob("fingerprints.json"))

    def no_reading(*args, **kwargs):
        raise AssertionError("the model's files were hashed again")

    monkeypatch.setattr(models, "open", no_reading, raising=False)
    assert Encoder(tiny_model, cache=tmp_path / "b", precision="fp32").settings.ref.fingerprint == first
