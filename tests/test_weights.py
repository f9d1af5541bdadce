"""load_weights: shipped default, plain paths, a real HTTP server on loopback, and every error."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest
import torch

from conformance.models.superres import SuperResolutionNet
from conformance.models.weights import SHIPPED, WeightsError, load_model, load_weights


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A SuperResolutionNet(3) state_dict saved as superres-<sha256 prefix>.pth, and its digest."""
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("served")
    tmp = folder / "tmp.pth"
    torch.save(SuperResolutionNet(3).state_dict(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = folder / f"superres-{digest[:10]}.pth"
    tmp.rename(path)
    return path, digest


@pytest.fixture(scope="module")
def server(checkpoint):
    """An http.server on 127.0.0.1 serving the checkpoint's folder; yields its base URL."""
    folder = checkpoint[0].parent
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_default_is_the_shipped_checkpoint():
    assert SHIPPED.is_file() and 150_000 < SHIPPED.stat().st_size < 400_000
    assert _same(load_weights(None), torch.load(SHIPPED, weights_only=True))
    assert not load_model().training


def test_plain_path_and_map_location(checkpoint):
    path, digest = checkpoint
    state = load_weights(str(path), sha256=digest, map_location="cpu")
    assert _same(state, torch.load(path, weights_only=True))
    assert all(t.device.type == "cpu" for t in state.values())


def test_http_download_is_cached_and_hash_checked(server, checkpoint, tmp_path):
    path, digest = checkpoint
    url = f"{server}/{path.name}"  # the name carries a hash prefix: check_hash semantics apply
    state = load_weights(url, cache_dir=tmp_path)
    assert _same(state, torch.load(path, weights_only=True))
    assert (tmp_path / path.name).read_bytes() == path.read_bytes()
    assert _same(load_weights(url, cache_dir=tmp_path, sha256=digest), state)  # from the cache


def test_file_url(checkpoint, tmp_path):
    path, _ = checkpoint
    assert _same(load_weights(path.as_uri(), cache_dir=tmp_path), torch.load(path, weights_only=True))


def test_wrong_hash_download_leaves_no_cached_file(server, checkpoint, tmp_path):
    path, _ = checkpoint
    with pytest.raises(WeightsError, match="SHA-256"):
        load_weights(f"{server}/{path.name}", cache_dir=tmp_path, sha256="0" * 64)
    assert not (tmp_path / path.name).exists()


def test_damaged_cache_is_caught(server, checkpoint, tmp_path):
    path, _ = checkpoint
    (tmp_path / path.name).write_bytes(b"not the file")
    with pytest.raises(WeightsError, match="cached copy"):
        load_weights(f"{server}/{path.name}", cache_dir=tmp_path)


def test_http_404_is_a_clear_error(server, tmp_path):
    with pytest.raises(WeightsError, match="could not download .*HTTP 404"):
        load_weights(f"{server}/nope.pth", cache_dir=tmp_path)


def test_unreachable_server(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on: bind, note it, close
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(WeightsError, match="could not download"):
        load_weights(f"http://127.0.0.1:{port}/w.pth", cache_dir=tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(str(tmp_path / "absent.pth"))


@pytest.mark.parametrize("payload", [b"", b"garbage" * 50])
def test_corrupt_file(tmp_path, payload):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(payload)
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        load_weights(bad)


def test_truncated_checkpoint(checkpoint, tmp_path):
    data = checkpoint[0].read_bytes()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        load_weights(bad)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="does not hold a state_dict"):
        load_weights(path)


def test_wrong_upscale_factor_names_the_keys(tmp_path):
    path = tmp_path / "x2.pth"
    torch.save(SuperResolutionNet(2).state_dict(), path)
    expected = r"conv4\.weight: checkpoint \[4, 32, 3, 3\] vs model \[9, 32, 3, 3\]"
    with pytest.raises(WeightsError, match=expected):
        load_weights(path)


def test_other_architecture_names_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3)).state_dict(), path)
    with pytest.raises(WeightsError) as info:
        load_weights(path)
    message = str(info.value)
    assert "missing keys ['conv1.bias'" in message and "unexpected keys ['0.bias', '0.weight']" in message


def test_checked_against_a_given_model(tmp_path):
    from conformance.models.srresnet import SRResNet

    model = SRResNet(n_blocks=1, channels=8)
    path = tmp_path / "srresnet.pth"
    torch.save(model.state_dict(), path)
    assert load_weights(path, model=model).keys() == model.state_dict().keys()
    with pytest.raises(WeightsError, match="not a checkpoint for SuperResolutionNet"):
        load_weights(path)


def test_bad_sha256_argument(checkpoint):
    with pytest.raises(WeightsError, match="8 to 64 hex digits"):
        load_weights(checkpoint[0], sha256="xyz")


def test_pickled_module_is_refused_with_advice(tmp_path):
    path = tmp_path / "module.pth"
    torch.save(SuperResolutionNet(3), path)  # a whole module, as some old checkpoints are
    with pytest.raises(WeightsError, match=r"pickled Python objects.*save model\.state_dict\(\)"):
        load_weights(path)


def test_pre_1_6_checkpoint_format(tmp_path):
    path = tmp_path / "legacy.pth"  # the tutorial's 2017 file predates the zip format
    torch.save(SuperResolutionNet(3).state_dict(), path, _use_new_zipfile_serialization=False)
    assert load_weights(path).keys() == SuperResolutionNet(3).state_dict().keys()
