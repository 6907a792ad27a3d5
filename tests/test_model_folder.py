"""A model folder is data from a stranger until it is checked: checksums (model.json's own included), paths
that stay inside the folder, manifest fields of the right type and size, shared permissions, and no
exception but EmbedclfError from ``TextClassifier.load``, whatever the folder holds."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedclf.data import DataOptions
from embedclf.encode.encoder import Encoder
from embedclf.errors import EmbedclfError
from embedclf.fit import fit_classifier
from embedclf.heads import make_head
from embedclf.model import TextClassifier
from embedclf.model_folder import (MANIFEST_CHECKSUM, check_head, load_head, manifest_digest, read_files,
                                   read_manifest, write_folder)
from embedclf.postprocess.model_rules import learn_rules
from tests.conftest import WORDS

DATA = Path(__file__).resolve().parent / "data"
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder(tiny_model, tmp_path_factory) -> Path:
    """A real folder (tiny model, logreg head, co-occurrence rules), written once; tests tamper with copies."""
    import random

    root = tmp_path_factory.mktemp("model-folder")
    rng = random.Random(0)
    rows = []
    for i in range(40):
        labels = ["news"] + (["market"] if i % 2 else ["film"]) + (["stocks", "market"] if i % 4 == 1 else [])
        rows.append(f"{' '.join(rng.choice(WORDS) for _ in range(6))} {i},{'|'.join(dict.fromkeys(labels))}")
    (root / "train.csv").write_text("text,y\n" + "\n".join(rows) + "\n")
    options = DataOptions(["text"], ["y"], label_sep="|")
    train = options.load(root / "train.csv", require_labels=True)
    encoder = Encoder(tiny_model, cache=root / "cache", device="cpu", precision="fp32")
    classifier = fit_classifier(train, make_head("logreg"), encoder, data_options=options,
                                rules=learn_rules(train, 0.9, 2))
    assert classifier.rules is not None
    return classifier.save(root / "model")


@pytest.fixture
def copy(folder, tmp_path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "m"))


def manifest_of(directory: Path) -> dict:
    return json.loads((directory / "model.json").read_text())


def rewrite(directory: Path, manifest: dict, *, sign: bool = True) -> None:
    """Write ``manifest`` as the folder's model.json, with a matching ``manifest_sha256`` when ``sign``."""
    manifest = dict(manifest)
    manifest.pop(MANIFEST_CHECKSUM, None)
    if sign:
        manifest[MANIFEST_CHECKSUM] = manifest_digest(manifest)
    (directory / "model.json").write_text(json.dumps(manifest, indent=2))


def replace_file(directory: Path, name: str, data: bytes) -> None:
    """Replace a file and update its checksums, as someone who knows the format would."""
    (directory / name).write_bytes(data)
    manifest = manifest_of(directory)
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    rewrite(directory, manifest)


def refused(directory: Path, *match: str, **load) -> str:
    with pytest.raises(EmbedclfError) as info:
        TextClassifier.load(directory, cache=False, **load)
    message = str(info.value)
    assert "\n" not in message, message
    for part in match:
        assert part in message, (part, message)
    return message


# -- checksums -----------------------------------------------------------------------------------------
def test_folder_carries_a_checksum_of_its_manifest_and_loads(folder):
    manifest = manifest_of(folder)
    assert manifest[MANIFEST_CHECKSUM] == manifest_digest(manifest)
    assert set(manifest["files"]) == {"head.skops", "rules.json", "features.skops"}  # logreg: hybrid by default
    loaded = TextClassifier.load(folder, cache=False)
    assert loaded.rules is not None and loaded.space.task == "multilabel"
    assert loaded.predict(["good movie", "market stocks fell"])[0]


@pytest.mark.parametrize("name", ["model-v0.1.0", "mlp-v0.1.0"])
def test_folders_of_0_1_0_without_a_manifest_checksum_still_pass_every_check(name):
    directory = DATA / name
    manifest = read_manifest(directory)
    assert MANIFEST_CHECKSUM not in manifest
    from embedclf.labels import LabelSpace

    check_head(directory, load_head(directory, read_files(directory, manifest)["head.skops"]),
               LabelSpace.from_dict(manifest["targets"]).layout)


def test_a_folder_without_manifest_checksum_loads_as_one_of_0_1_0(copy):
    manifest = manifest_of(copy)
    rewrite(copy, manifest, sign=False)
    assert TextClassifier.load(copy, cache=False).space.n_columns == len(manifest["thresholds"])


def test_edited_model_json_is_refused(copy):
    text = (copy / "model.json").read_text()
    (copy / "model.json").write_text(text.replace('"at_least_one": false', '"at_least_one": true'))
    refused(copy, "model.json: does not match its checksum (manifest_sha256)")


def test_whitespace_of_model_json_is_not_its_content(copy):
    rewrite(copy, json.loads(json.dumps(manifest_of(copy))))  # re-indented, same content
    (copy / "model.json").write_text(json.dumps(manifest_of(copy)))
    TextClassifier.load(copy, cache=False)


def test_truncated_model_json_is_refused(copy):
    data = (copy / "model.json").read_bytes()
    (copy / "model.json").write_bytes(data[: len(data) // 2])
    refused(copy, "model.json: unreadable manifest")


def test_model_json_of_another_folder_is_refused(copy):
    shutil.copy(DATA / "model-v0.1.0" / "model.json", copy / "model.json")
    refused(copy, "head.skops does not match its checksum in model.json")


@pytest.mark.parametrize("name", ["head.skops", "rules.json"])
def test_edited_or_truncated_files_are_refused(copy, name):
    data = (copy / name).read_bytes()
    (copy / name).write_bytes(data[:-10])
    refused(copy, f"{name} does not match its checksum in model.json")
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    (copy / name).write_bytes(bytes(flipped))
    refused(copy, f"{name} does not match its checksum")
    (copy / name).unlink()
    refused(copy, f"{name} is missing")


def test_garbage_head_with_matching_checksums_is_refused_in_one_line(copy):
    replace_file(copy, "head.skops", b"PK\x03\x04 not really a zip file")
    refused(copy, "head.skops is not a skops file")
    replace_file(copy, "head.skops", b"")
    refused(copy, "head.skops is empty, not a skops file")


def test_garbage_rules_with_matching_checksums_are_refused_in_one_line(copy):
    for data, message in [(b"\xff\xfe", "not UTF-8"), (b"[1, 2]", "not an embedclf co-occurrence rules file"),
                          (b'{"labels": 3}', "malformed co-occurrence rules file")]:
        replace_file(copy, "rules.json", data)
        refused(copy, "rules.json", message)


def test_head_of_a_trusted_but_wrong_type_is_refused(copy):
    import skops.io as sio

    replace_file(copy, "head.skops", sio.dumps({"a": 1}))
    refused(copy, "head.skops: holds a dict, not an embedclf head")


def test_head_holding_untrusted_types_is_still_refused(copy):
    import skops.io as sio

    replace_file(copy, "head.skops", sio.dumps({"func": np.load}))
    refused(copy, "types embedclf does not trust")


# -- paths -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../head.skops", "/etc/passwd", "sub/head.skops", "", ".", "..", "a\\b",
                                  "nul\x00", "C:head.skops"])
def test_files_outside_the_folder_are_refused(copy, name):
    manifest = manifest_of(copy)
    manifest["files"][name] = "0" * 64
    rewrite(copy, manifest)
    refused(copy, "model.json: field 'files' names a file outside the folder")


def test_symlinked_files_are_refused(copy, tmp_path):
    outside = tmp_path / "outside.skops"
    shutil.move(copy / "head.skops", outside)
    os.symlink(outside, copy / "head.skops")
    refused(copy, "head.skops is a symbolic link")
    (copy / "head.skops").unlink()
    shutil.move(outside, copy / "head.skops")
    shutil.move(copy / "model.json", tmp_path / "model.json")
    os.symlink(tmp_path / "model.json", copy / "model.json")
    refused(copy, "model.json: is a symbolic link")


def bundle(directory: Path, model, **encoder) -> None:
    manifest = manifest_of(directory)
    manifest["encoder"] |= {"model": model, "bundled": True, **encoder}
    rewrite(directory, manifest)


def test_a_bundled_encoder_inside_the_folder_loads(copy, tiny_model):
    shutil.copytree(tiny_model, copy / "encoder")
    bundle(copy, "encoder")
    loaded = TextClassifier.load(copy, cache=False)
    assert Path(loaded.encoder.settings.ref.path) == (copy / "encoder").resolve()


@pytest.mark.parametrize("path", ["../..", "..", "/tmp", "~/model", "encoder/../../x", "\\\\host\\share", "C:\\x",
                                  ".", ""])
def test_bundled_encoder_paths_leaving_the_folder_are_refused(copy, path):
    bundle(copy, path)
    refused(copy, "model.json: field 'encoder.model'")


def test_bundled_encoder_symlinks_leaving_the_folder_are_refused(copy, tiny_model):
    os.symlink(tiny_model, copy / "encoder")
    bundle(copy, "encoder")
    refused(copy, "field 'encoder.model' points the bundled encoder outside the folder")
    (copy / "encoder").unlink()
    shutil.copytree(tiny_model, copy / "encoder")
    weights = next(p for p in (copy / "encoder").iterdir() if p.suffix == ".safetensors")
    weights.unlink()
    os.symlink(Path(tiny_model) / weights.name, weights)
    refused(copy, f"encoder/{weights.name} links outside the model folder")
    weights.unlink()
    shutil.copy(Path(tiny_model) / weights.name, weights)
    (copy / "encoder" / "model.json").write_text(json.dumps({"encoder": {"bundled": True, "model": "../../.."}}))
    refused(copy, "the bundled encoder encoder holds a model.json of its own")
    shutil.rmtree(copy / "encoder")
    refused(copy, "the bundled encoder encoder is missing")


def test_bundled_flag_must_be_a_boolean(copy, tiny_model):
    bundle(copy, tiny_model, bundled="yes")
    refused(copy, "model.json: field 'encoder.bundled' must be true or false")


# -- fields ------------------------------------------------------------------------------------------
def _edit(change):
    def edit(manifest):
        change(manifest)
        return manifest
    return edit


FIELD_CASES = {
    "unknown n-grams": (lambda m: m["features"].__setitem__("ngrams", "chars"),
                        "field 'features.ngrams' is 'chars', not one of: word, word+char"),
    "n-grams unlike the vectoriser": (lambda m: m["features"].__setitem__("ngrams", "word+char"),
                                      "field 'features.ngrams' says word+char, but features.skops holds word"),
    "short thresholds": (lambda m: m["thresholds"].pop(), "field 'thresholds' has"),
    "long thresholds": (lambda m: m["thresholds"].append(0.5), "field 'thresholds' has"),
    "threshold above 1": (lambda m: m["thresholds"].__setitem__(0, 1.5), "field 'thresholds' must hold numbers"),
    "threshold NaN": (lambda m: m["thresholds"].__setitem__(0, float("nan")), "field 'thresholds' must hold"),
    "threshold string": (lambda m: m["thresholds"].__setitem__(0, "0.5"), "field 'thresholds' must hold"),
    "threshold bool": (lambda m: m["thresholds"].__setitem__(0, True), "field 'thresholds' must hold"),
    "thresholds dict": (lambda m: m.__setitem__("thresholds", {"a": 0.5}), "field 'thresholds' must be a list"),
    "unknown task": (lambda m: m.__setitem__("task", "regression"), "field 'task' is 'regression', not one of"),
    "task of another shape": (lambda m: m.__setitem__("task", "multiclass"), "field 'task' is multiclass but"),
    "unknown kind": (lambda m: m["targets"][0].__setitem__("kind", "ranking"), "field 'targets[0].kind'"),
    "targets dict": (lambda m: m.__setitem__("targets", {"name": "y"}), "field 'targets' must be a list"),
    "no targets": (lambda m: m.__setitem__("targets", []), "field 'targets' is empty"),
    "target list": (lambda m: m["targets"].__setitem__(0, ["y"]), "field 'targets[0]' must be an object"),
    "classes string": (lambda m: m["targets"][0].__setitem__("classes", "abc"), "field 'targets[0].classes'"),
    "class twice": (lambda m: m["targets"][0]["classes"].__setitem__(1, m["targets"][0]["classes"][0]),
                    "field 'targets[0].classes' names a class twice"),
    "class not string": (lambda m: m["targets"][0]["classes"].__setitem__(0, 1), "field 'targets[0].classes'"),
    "fewer classes than the head": (lambda m: (m["targets"][0]["classes"].pop(), m["thresholds"].pop()),
                                    "field 'targets' describe blocks"),
    "kind unlike the head": (lambda m: m.__setitem__("task", "multiclass") or m["targets"][0].__setitem__(
        "kind", "multiclass"), "field 'targets' describe blocks"),
    "two targets for one block": (lambda m: (m["targets"].append(dict(m["targets"][0], name="z")),
                                             m["thresholds"].extend(m["thresholds"]), m.__setitem__("task",
                                                                                                    "multioutput")),
                                  "field 'targets' describe blocks"),
    "target named twice": (lambda m: (m["targets"].append(dict(m["targets"][0])), m.__setitem__("task",
                                                                                                "multioutput")),
                           "field 'targets[1].name' repeats"),
    "files list": (lambda m: m.__setitem__("files", ["head.skops"]), "field 'files' must be an object"),
    "files without head": (lambda m: m["files"].pop("head.skops"), "field 'files' lists no head.skops"),
    "digest not hex": (lambda m: m["files"].__setitem__("head.skops", "xyz"), "field 'files' holds no sha256"),
    "encoder list": (lambda m: m.__setitem__("encoder", ["x"]), "field 'encoder' must be an object"),
    "encoder model number": (lambda m: m["encoder"].__setitem__("model", 3), "field 'encoder.model' must be"),
    "fingerprint missing": (lambda m: m["encoder"].pop("fingerprint"), "field 'encoder.fingerprint' must be"),
    "encoder batch size": (lambda m: m["encoder"].__setitem__("batch_size", -1), "field 'encoder': --batch-size"),
    "encoder pooling list": (lambda m: m["encoder"].__setitem__("pooling", ["mean"]), "field 'encoder'"),
    "encoder backend": (lambda m: m["encoder"].__setitem__("backend", "tpu"), "field 'encoder': --backend"),
    "data list": (lambda m: m.__setitem__("data", ["text"]), "field 'data' must be an object"),
    "data unknown key": (lambda m: m["data"].__setitem__("colour", "red"), "field 'data'"),
    "data bad task": (lambda m: m["data"].__setitem__("task", "x"), "field 'data': unknown --task"),
    "data text cols": (lambda m: m["data"].__setitem__("text_cols", 5), "field 'data'"),
    "info string": (lambda m: m.__setitem__("info", "x"), "field 'info' must be an object"),
    "versions list": (lambda m: m.__setitem__("versions", []), "field 'versions' must be an object"),
    "at_least_one string": (lambda m: m.__setitem__("at_least_one", "yes"), "field 'at_least_one' must be true"),
    "format": (lambda m: m.__setitem__("format", "other/2"), "not an embedclf model manifest"),
    "missing files": (lambda m: m.pop("files"), "manifest lacks 'files'"),
}


@pytest.mark.parametrize("case", FIELD_CASES)
def test_bad_manifest_fields_are_refused_in_one_line_naming_the_field(copy, case):
    change, message = FIELD_CASES[case]
    manifest = manifest_of(copy)
    change(manifest)
    rewrite(copy, manifest)
    assert "model.json" in refused(copy, message)


def test_fields_are_checked_before_any_other_file_is_read(copy):
    (copy / "head.skops").unlink()
    manifest = manifest_of(copy)
    manifest["thresholds"].pop()
    rewrite(copy, manifest)
    refused(copy, "field 'thresholds'")


def test_a_model_json_that_is_not_an_object_or_not_json(copy):
    for data, message in [(b"[]", "not an embedclf model manifest"), (b"\xff\xfe\x00", "unreadable manifest"),
                          (b"[" * 100000, "unreadable manifest"), (b"", "unreadable manifest")]:
        (copy / "model.json").write_bytes(data)
        refused(copy, "model.json", message)
    (copy / "model.json").unlink()
    (copy / "model.json").mkdir()
    refused(copy, "model.json")


# -- permissions -------------------------------------------------------------------------------------
def test_written_folders_have_the_usual_permissions(folder, tmp_path):
    private = Path(tempfile.mkdtemp(dir=tmp_path))  # as a fine-tuned transformer is staged: 0700
    (private / "sub").mkdir(mode=0o700)
    (private / "sub" / "weights.bin").write_bytes(b"w")
    os.chmod(private / "sub" / "weights.bin", 0o600)
    manifest = manifest_of(folder)
    previous = os.umask(0o022)
    try:
        out = write_folder(tmp_path / "shared" / "model", manifest, {"head.skops": (folder / "head.skops").read_bytes()},
                           bundle={"encoder": private})
        again = write_folder(out, manifest_of(folder), {"head.skops": (folder / "head.skops").read_bytes()})
    finally:
        os.umask(previous)
    assert again == out
    for root in (out, tmp_path / "shared"):
        assert stat.S_IMODE(root.stat().st_mode) == 0o755
    modes = {}
    for path in out.rglob("*"):
        modes[path.relative_to(out).as_posix()] = stat.S_IMODE(path.lstat().st_mode)
    assert modes == {"head.skops": 0o644, "model.json": 0o644}
    out2 = tmp_path / "bundled"
    previous = os.umask(0o022)
    try:
        write_folder(out2, manifest_of(folder), {"head.skops": b"x"}, bundle={"encoder": private})
    finally:
        os.umask(previous)
    modes = {p.relative_to(out2).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [out2, *out2.rglob("*")]}
    assert modes == {".": 0o755, "encoder": 0o755, "encoder/sub": 0o755, "encoder/sub/weights.bin": 0o644,
                     "head.skops": 0o644, "model.json": 0o644}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


# -- properties: whatever the folder holds, load answers EmbedclfError or a classifier --------------
def load_or_refuse(directory: Path) -> None:
    try:
        TextClassifier.load(directory, cache=False)
    except EmbedclfError as exc:
        assert "\n" not in str(exc)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("scratch")


def fresh(folder: Path, scratch: Path) -> Path:
    directory = Path(tempfile.mkdtemp(dir=scratch)) / "m"
    return Path(shutil.copytree(folder, directory))


@FAST
@given(data=st.binary(max_size=2000))
def test_random_bytes_as_model_json(folder, scratch, data):
    directory = fresh(folder, scratch)
    (directory / "model.json").write_bytes(data)
    load_or_refuse(directory)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                    max_size=4),
                    max_leaves=12)
FIELDS = ["format", "task", "targets", "head", "thresholds", "at_least_one", "encoder", "data", "info", "versions",
          "files", "saved"]


@FAST
@given(data=st.data(), sign=st.booleans())
def test_random_manifests(folder, scratch, data, sign):
    """The real manifest with random fields replaced, removed or added (re-signed, so the field checks run)."""
    manifest = manifest_of(folder)
    for key in data.draw(st.lists(st.sampled_from(FIELDS) | st.text(max_size=6), max_size=4)):
        if data.draw(st.booleans()):
            manifest.pop(key, None)
        else:
            manifest[key] = data.draw(JSON)
    directory = fresh(folder, scratch)
    rewrite(directory, manifest, sign=sign)
    load_or_refuse(directory)


@FAST
@given(manifest=st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), JSON, max_size=8))
def test_entirely_random_manifests(folder, scratch, manifest):
    manifest.setdefault("format", "embedclf-model/1")
    directory = fresh(folder, scratch)
    rewrite(directory, manifest)
    load_or_refuse(directory)


NAMES = st.sampled_from(["head.skops", "rules.json", "model.json", "../head.skops", "/etc/passwd", "..", ".", "",
                         "x", "encoder", "head.skops/"]) | st.text(max_size=10)
DIGESTS = st.sampled_from(["0" * 64, "g" * 64, ""]) | st.text(max_size=70) | JSON


@FAST
@given(data=st.data())
def test_random_files_maps_and_thresholds(folder, scratch, data):
    manifest = manifest_of(folder)
    if data.draw(st.booleans()):
        files = data.draw(st.dictionaries(NAMES, DIGESTS, max_size=4))
        if data.draw(st.booleans()):  # keep the real entries, so the checks after them run too
            files = manifest["files"] | files
        manifest["files"] = files
    if data.draw(st.booleans()):
        number = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-2, 2) | st.booleans()
        manifest["thresholds"] = data.draw(st.lists(number | JSON, max_size=len(manifest["thresholds"]) + 1)
                                           | st.lists(st.floats(0, 1), min_size=len(manifest["thresholds"]),
                                                      max_size=len(manifest["thresholds"])))
    directory = fresh(folder, scratch)
    rewrite(directory, manifest)
    load_or_refuse(directory)


@FAST
@given(data=st.binary(max_size=3000), prefix=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06"]),
       valid_checksum=st.booleans())
def test_random_bytes_as_head(folder, scratch, data, prefix, valid_checksum):
    directory = fresh(folder, scratch)
    if valid_checksum:
        replace_file(directory, "head.skops", prefix + data)
    else:
        (directory / "head.skops").write_bytes(prefix + data)
    load_or_refuse(directory)


@FAST
@given(data=st.data())
def test_corrupted_zip_members_of_a_real_head(folder, scratch, data):
    """A real head's bytes with a few flipped: skops' own parsing must fail into one line, not a traceback."""
    blob = bytearray((folder / "head.skops").read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    directory = fresh(folder, scratch)
    replace_file(directory, "head.skops", bytes(blob))
    load_or_refuse(directory)


def test_a_model_folder_given_as_the_encoder_model_is_checked_too(copy, tiny_model):
    """``--model FOLDER`` names a fine-tuned model folder's transformer: its manifest is checked as on load."""
    from embedclf.encode.models import resolve_model_path

    shutil.copytree(tiny_model, copy / "encoder")
    bundle(copy, "encoder")
    assert resolve_model_path(str(copy)) == (copy / "encoder").resolve()
    bundle(copy, "../..")
    with pytest.raises(EmbedclfError, match="field 'encoder.model' points the bundled encoder outside"):
        resolve_model_path(str(copy))
    (copy / "model.json").write_text("{not json")
    with pytest.raises(EmbedclfError, match="unreadable manifest"):
        resolve_model_path(str(copy))
