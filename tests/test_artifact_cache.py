"""The disk cache of artifacts: reuse, keys, corruption rebuilt, LRU cap, concurrent writers."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import onnx
import pytest
import torch

from conformance.formats import artifact_cache
from conformance.formats.artifact_cache import ArtifactCache, module_fingerprint, pack, unpack
from conformance.formats.onnx_export import ExportTarget
from tests.conftest import REPO


@pytest.fixture
def cache(tmp_path):
    before = artifact_cache.active()
    yield artifact_cache.configure(tmp_path / "artifacts")
    artifact_cache.restore(before)


def test_a_stored_artifact_is_reused(cache):
    built = []
    assert cache.get("k", lambda: built.append(1) or b"payload") == b"payload"
    assert cache.get("k", lambda: built.append(1) or b"other") == b"payload"
    assert built == [1] and (cache.hits, cache.stored) == (1, 1)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_a_corrupted_entry_is_detected_and_rebuilt(cache, damage):
    payload = bytes(range(256)) * 64
    cache.get("k", lambda: payload)
    path = cache.path("k")
    blob = bytearray(path.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x01
    elif damage == "truncate":
        blob = blob[: len(blob) - 100]
    else:
        blob = bytearray(b"not an entry")
    path.write_bytes(bytes(blob))
    rebuilt = []
    assert cache.get("k", lambda: rebuilt.append(1) or payload) == payload
    assert rebuilt == [1] and cache.corrupt == 1
    assert cache.read("k") == payload  # stored again, whole


def test_least_recently_used_entries_go_past_the_cap(tmp_path):
    cache = ArtifactCache(tmp_path, max_bytes=3 * (1000 + 40))
    for i, key in enumerate("abc"):
        cache.write(key, bytes(1000))
        os.utime(cache.path(key), (1000 + i, 1000 + i))  # a written before b before c
    cache.read("a")  # a is used again: b is now the least recently used
    cache.write("d", bytes(1000))
    assert sorted(p.stem for _, _, p in cache.entries()) == ["a", "c", "d"]
    assert cache.evicted == 1 and cache.size() <= cache.max_bytes


def test_keys_follow_everything_that_changes_the_bytes():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3)
    same = torch.nn.Conv2d(3, 4, 3)
    same.load_state_dict(conv.state_dict())
    assert module_fingerprint(conv) == module_fingerprint(same)
    strided = torch.nn.Conv2d(3, 4, 3, stride=2)
    strided.load_state_dict(conv.state_dict())
    assert module_fingerprint(strided) != module_fingerprint(conv)  # an attribute
    with torch.no_grad():
        same.bias[0] += 1e-6
    assert module_fingerprint(same) != module_fingerprint(conv)  # a weight
    assert ArtifactCache.key("onnx", "dynamo", 18) != ArtifactCache.key("onnx", "dynamo", 17)


def test_onnx_exports_are_reused_and_a_corrupted_one_is_exported_again(cache, monkeypatch):
    from conformance.formats import onnx_export

    calls = []
    real = onnx_export.export
    monkeypatch.setattr(onnx_export, "export", lambda *a, **k: calls.append(1) or real(*a, **k))
    module, args = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU()), (torch.zeros(1, 1, 8, 8),)
    target = ExportTarget("torchscript", 17)
    first = artifact_cache.onnx_export(module, args, target, dynamic=[(0, 2, 3)])
    again = artifact_cache.onnx_export(module, args, target, dynamic=[(0, 2, 3)])
    assert calls == [1] and again.SerializeToString() == first.SerializeToString()
    (entry,) = [p for _, _, p in cache.entries()]
    entry.write_bytes(entry.read_bytes()[:-10])  # torn on disk
    rebuilt = artifact_cache.onnx_export(module, args, target, dynamic=[(0, 2, 3)])
    assert calls == [1, 1] and cache.corrupt == 1
    onnx.checker.check_model(rebuilt)
    artifact_cache.onnx_export(module, args, target, dynamic=[()])  # another deployment: another key
    assert calls == [1, 1, 1]


def test_converter_files_round_trip(cache, tmp_path):
    made = tmp_path / "made"
    made.mkdir()
    (made / "m.param").write_text("7767517\n")
    (made / "m.bin").write_bytes(bytes(range(10)))
    produced = []

    def produce():
        produced.append(1)
        return {"m.param": str(made / "m.param"), "m.bin": str(made / "m.bin")}

    folders = iter([str(tmp_path / "f1"), str(tmp_path / "f2")])

    def folder():
        path = next(folders)
        os.mkdir(path)
        return path

    first = artifact_cache.cached_files("pnnx", {"fp16": 0}, b"model", produce, folder)
    second = artifact_cache.cached_files("pnnx", {"fp16": 0}, b"model", produce, folder)
    assert produced == [1] and first == produce() and second["m.bin"].startswith(str(tmp_path / "f1"))
    assert open(second["m.bin"], "rb").read() == bytes(range(10))
    assert unpack(pack({"a": b"", "b": b"xy"})) == {"a": b"", "b": b"xy"}


def test_off_means_built_every_time(tmp_path):
    before = artifact_cache.active()
    artifact_cache.configure(tmp_path, enabled=False)
    try:
        files = artifact_cache.cached_files("x", {}, b"m", lambda: {"a": "path"}, lambda: "never")
        assert files == {"a": "path"} and not list(tmp_path.iterdir())
    finally:
        artifact_cache.restore(before)


_WRITER = """
import sys
from conformance.formats.artifact_cache import ArtifactCache
cache = ArtifactCache(sys.argv[1], max_bytes=1 << 20)
me = int(sys.argv[2])
bad = 0
for i in range(200):
    key = f"k{i % 7}"
    payload = bytes([i % 7]) * (3000 + 1000 * (i % 7))
    got = cache.read(key)
    if got is not None and got != payload:
        bad += 1
    cache.write(key, payload)
print(bad, cache.corrupt)
"""


def test_concurrent_processes_never_see_a_torn_entry(tmp_path):
    """Four processes write and read the same keys at once (as xdist workers and concurrent
    shards on one host do): every read is whole, every entry valid."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def one(n):
        return subprocess.run([sys.executable, "-c", _WRITER, str(tmp_path), str(n)], capture_output=True,
                              text=True, env=env, timeout=120)

    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(one, range(4)))
    for proc in done:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["0", "0"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # no temporary left behind


class _NotingBackend:
    """A program runtime that learns something at export that its artifact does not say."""
    format = "prog"

    def __init__(self):
        self.exported, self.notes = 0, {}

    def artifact_settings(self):
        return {"v": 1}

    def export(self, module, args, dynamic):
        self.exported += 1
        self.notes[b"artifact"] = b"placed"
        return b"artifact"

    def artifact_notes(self, artifact):
        return self.notes[artifact]

    def take_artifact_notes(self, artifact, notes):
        self.notes[artifact] = notes


def test_a_program_and_its_notes_are_one_entry(cache):
    """Kept as two entries, LRU eviction took the older one (the notes) and left the program."""
    module, args = torch.nn.Conv2d(1, 1, 3), (torch.zeros(1, 1, 4, 4),)
    first = _NotingBackend()
    assert artifact_cache.program_export(first, module, args, None) == b"artifact"
    assert len(cache.entries()) == 1
    again = _NotingBackend()
    assert artifact_cache.program_export(again, module, args, None) == b"artifact"
    assert (again.exported, again.notes) == (0, {b"artifact": b"placed"})
