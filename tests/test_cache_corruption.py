"""A damaged cache shard never yields a wrong vector: it is moved aside with one warning and re-encoded; a
damaged export is one error line that says how to make it again.

Also ``embedclf cache info|clear``: clear asks first (refusing without --yes when stdin is not a terminal)
and removes the export store's entries too (all, or the model's) unless --keep-exports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedclf.encode.cache import EmbeddingCache
from embedclf.encode.encoder import Encoder
from embedclf.encode.exports import ExportStore
from tests.conftest import sample_texts

ROOT = Path(__file__).resolve().parents[1]
TEXTS = sample_texts(40, seed=3)


def make(tiny_model, cache, **kwargs):
    return Encoder(tiny_model, cache=cache, device="cpu", precision="fp32", **kwargs)


@pytest.fixture
def filled(tiny_model, cache_dir):
    """A cache of TEXTS in 4 shards of 10, and the vectors of an encode without any cache."""
    encoder = make(tiny_model, cache_dir, chunk_size=10)
    encoder.encode(TEXTS)
    shards = sorted(encoder.space.shard_dir.glob("[0-9]*.npy"))
    assert len(shards) == 4
    return shards, make(tiny_model, False).encode(TEXTS)


def flip_vector_bytes(shard: Path) -> None:
    records = np.load(shard, mmap_mode="r")  # the middle record's vector, bytes 32-48 of it
    middle = records.offset + len(records) // 2 * records.itemsize + records.dtype.fields["vector"][1] + 32
    del records
    with open(shard, "r+b") as handle:
        handle.seek(middle)
        chunk = handle.read(16)
        handle.seek(middle)
        handle.write(bytes(b ^ 0x5A for b in chunk))


def truncate(shard: Path, fraction: float) -> None:
    size = shard.stat().st_size
    with open(shard, "r+b") as handle:
        handle.truncate(int(size * fraction))


DAMAGE = {
    "flipped bytes": (flip_vector_bytes, "checksum mismatch"),
    "empty": (lambda shard: truncate(shard, 0), "empty file"),
    "truncated halfway": (lambda shard: truncate(shard, 0.5), "truncated"),
}


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if "warning" in line.lower()]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_shard_is_moved_aside_and_re_encoded(tiny_model, cache_dir, filled, capfd, damage):
    shards, clean = filled
    bad = shards[1]
    corrupt, reason = DAMAGE[damage]
    corrupt(bad)
    capfd.readouterr()

    encoder = make(tiny_model, cache_dir, chunk_size=10)
    X = encoder.encode(TEXTS)
    err = capfd.readouterr().err

    np.testing.assert_allclose(X, clean, atol=1e-6)
    assert np.all(np.abs(np.linalg.norm(X, axis=1) - 1) < 1e-4)
    assert encoder.last_report.encoded == 10 and encoder.last_report.cached == 30
    lines = warnings_in(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("embedclf: warning: cache shard ") and bad.name in lines[0] and reason in lines[0]
    assert "encoded again" in lines[0]
    assert "Traceback" not in err
    assert not bad.exists() and bad.with_name(bad.name + ".corrupt").exists()

    again = make(tiny_model, cache_dir)  # the re-encoded vectors are a new, whole shard
    np.testing.assert_array_equal(again.encode(TEXTS), X)
    assert again.last_report.encoded == 0 and warnings_in(capfd.readouterr().err) == []
    assert sum(info.entries for info in EmbeddingCache(cache_dir).spaces()) == 40


def test_the_checksum_is_in_the_shard_name(filled):
    import hashlib

    shards, _ = filled
    for shard in shards:
        number, tag, digest = shard.stem.split("-")
        assert len(number) == 8 and len(tag) == 8 and digest == hashlib.sha256(shard.read_bytes()).hexdigest()


def test_shards_named_without_a_checksum_are_still_read(tiny_model, cache_dir, filled, capfd):
    shards, clean = filled
    for shard in shards:  # as older versions named them
        shard.rename(shard.with_name("-".join(shard.stem.split("-")[:2]) + ".npy"))
    capfd.readouterr()
    encoder = make(tiny_model, cache_dir)
    np.testing.assert_allclose(encoder.encode(TEXTS), clean, atol=1e-6)
    assert encoder.last_report.encoded == 0 and warnings_in(capfd.readouterr().err) == []


def test_a_truncated_shard_without_a_checksum_is_caught_by_its_size(tiny_model, cache_dir, filled, capfd):
    shards, clean = filled
    old = shards[2].with_name("-".join(shards[2].stem.split("-")[:2]) + ".npy")
    shards[2].rename(old)
    with open(old, "ab") as handle:  # longer than its header says
        handle.write(b"\0" * 7)
    capfd.readouterr()
    encoder = make(tiny_model, cache_dir)
    np.testing.assert_allclose(encoder.encode(TEXTS), clean, atol=1e-6)
    err = capfd.readouterr().err
    assert encoder.last_report.encoded == 10 and len(warnings_in(err)) == 1 and "its header says" in err
    assert old.with_name(old.name + ".corrupt").exists()


def test_flipped_bytes_in_a_shard_without_a_checksum_are_caught_by_their_values(tiny_model, cache_dir, filled,
                                                                                  capfd):
    shards, clean = filled
    old = shards[1].with_name("-".join(shards[1].stem.split("-")[:2]) + ".npy")
    shards[1].rename(old)
    flip_vector_bytes(old)  # XOR 0x5A on float32 bytes: exponents of ~1e29 (or NaN), as on a damaged disk
    capfd.readouterr()
    encoder = make(tiny_model, cache_dir)
    np.testing.assert_allclose(encoder.encode(TEXTS), clean, atol=1e-6)
    err = capfd.readouterr().err
    assert encoder.last_report.encoded == 10 and len(warnings_in(err)) == 1 and "shard without checksum" in err


def test_another_space_object_does_not_warn_twice(tiny_model, cache_dir, filled, capfd):
    shards, _ = filled
    truncate(shards[0], 0)
    capfd.readouterr()
    first, second = make(tiny_model, cache_dir), make(tiny_model, cache_dir)
    assert len(first.space) == 30 and len(second.space) == 30
    assert len(warnings_in(capfd.readouterr().err)) == 1


def test_cache_info_survives_a_damaged_shard(tiny_model, cache_dir, filled):
    shards, _ = filled
    truncate(shards[0], 0)
    info = run("cache", "info", "--cache", cache_dir)
    assert info.returncode == 0 and "Traceback" not in info.stderr


# -- embedclf cache clear ----------------------------------------------------------------------------
def run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "embedclf", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, stdin=kwargs.pop("stdin", subprocess.DEVNULL), **kwargs)


def fake_export(store: ExportStore, name: str, fingerprint: str, model: str) -> Path:
    def build(folder):
        (folder / "model.onnx").write_bytes(b"\0" * 4096)

    return store.ensure(name, build, {"fingerprint": fingerprint, "model": model, "backend": "onnx",
                                      "precision": "fp32"}).path


@pytest.fixture
def with_export(cache_dir, filled, tmp_path, monkeypatch):
    """Another model's export in a store of this test's own (and a legacy export inside the cache)."""
    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(tmp_path / "exports"))
    (cache_dir / "onnx" / "old").mkdir(parents=True)
    return fake_export(ExportStore(), "other-onnx-fp32", "f" * 64, "other/model")


def test_clear_without_yes_and_no_terminal_refuses(cache_dir, with_export):
    result = run("cache", "clear", "--cache", cache_dir)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--yes" in result.stderr and "Traceback" not in result.stderr
    assert len(EmbeddingCache(cache_dir).spaces()) == 1 and with_export.exists()
    assert len(list(cache_dir.glob("*/shards/[0-9]*.npy"))) == 4


def test_clear_with_yes_removes_vectors_and_exports(cache_dir, with_export):
    result = run("cache", "clear", "--cache", cache_dir, "-y")
    assert result.returncode == 0, result.stderr
    assert "removed 1 spaces, 40 entries" in result.stderr and "1 exports (0.0 MB)" in result.stderr
    assert EmbeddingCache(cache_dir).spaces() == [] and not with_export.exists() and ExportStore().entries() == []
    assert not (cache_dir / "onnx").exists()
    nothing = run("cache", "clear", "--cache", cache_dir)
    assert nothing.returncode == 0 and "nothing to remove" in nothing.stderr


def test_clear_keep_exports(cache_dir, with_export):
    result = run("cache", "clear", "--cache", cache_dir, "--yes", "--keep-exports")
    assert result.returncode == 0, result.stderr
    assert "removed 1 spaces, 40 entries, 0.0 MB from" in result.stderr and " exports (" not in result.stderr
    assert EmbeddingCache(cache_dir).spaces() == [] and with_export.exists()


def test_clear_one_model_removes_only_its_exports(tiny_model, cache_dir, with_export):
    fingerprint = EmbeddingCache(cache_dir).spaces()[0].config["fingerprint"]
    own = fake_export(ExportStore(), f"{fingerprint[:16]}-onnx-int8-v2", fingerprint, tiny_model)
    info = run("cache", "info", "--cache", cache_dir)
    assert info.returncode == 0, info.stderr
    assert own.name in info.stdout and with_export.name in info.stdout
    assert f"{ExportStore().root}: 2 exports" in info.stderr
    result = run("cache", "clear", "--cache", cache_dir, "--model", tiny_model, "--yes")
    assert result.returncode == 0, result.stderr
    assert "removed 1 spaces, 40 entries" in result.stderr and "1 exports" in result.stderr
    assert not own.exists() and with_export.exists()
    assert run("cache", "clear", "--cache", cache_dir, "--model", "f" * 8, "--yes").returncode == 0
    assert not with_export.exists(), "a fingerprint prefix selects a model's exports without any cache space"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize("answer, removed", [("n", False), ("y", True)])
def test_clear_asks_on_a_terminal(cache_dir, with_export, answer, removed):
    import pty

    leader, follower = pty.openpty()
    try:
        os.write(leader, f"{answer}\n".encode())
        result = run("cache", "clear", "--cache", cache_dir, stdin=follower)
    finally:
        os.close(follower)
        os.close(leader)
    assert "remove 1 spaces, 40 entries" in result.stderr and "[y/N]" in result.stderr
    if removed:
        assert result.returncode == 0 and "removed 1 spaces" in result.stderr
        assert EmbeddingCache(cache_dir).spaces() == [] and not with_export.exists()
    else:
        assert result.returncode == 1 and "nothing removed" in result.stderr
        assert len(EmbeddingCache(cache_dir).spaces()) == 1 and with_export.exists()


@pytest.mark.parametrize("backend, damaged", [("onnx", "model.onnx"), ("openvino", "model.xml")])
def test_a_damaged_export_is_one_line_that_says_how_to_make_it_again(tiny_model, tmp_path, monkeypatch, backend,
                                                                     damaged):
    pytest.importorskip("onnxruntime" if backend == "onnx" else "openvino")
    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(tmp_path / "exports"))
    Encoder(tiny_model, cache=False, backend=backend, precision="fp32").encode(TEXTS[:3])
    (entry,) = [e for e in ExportStore().entries() if e.meta.get("backend") == backend]
    model = entry.path / damaged
    model.write_bytes(model.read_bytes()[:500])  # a truncated file
    (tmp_path / "d.csv").write_text("text\n" + "\n".join(TEXTS[3:8]) + "\n")
    options = ["--model", tiny_model, "--backend", backend, "--precision", "fp32", "--cache", tmp_path / "cache"]
    result = run("encode", tmp_path / "d.csv", *options)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip()
    assert line.startswith(f"embedclf: error: cannot open the {backend} export {entry.path}: ") and "\n" not in line
    assert line.endswith(f"remove it with 'embedclf cache clear --model {tiny_model}' and run again")
    assert run("cache", "clear", "--model", tiny_model, "--yes", "--cache", tmp_path / "cache").returncode == 0
    again = run("encode", tmp_path / "d.csv", *options)  # the advice works: the export is made anew
    assert again.returncode == 0, again.stderr
