"""Weights lookup order: configured file, torchvision cache, download, offline fallback."""
import numpy as np
import pytest
import torch
import torchvision

from app.core import model as M


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    """A ResNet-50 state dict written by the test (random init: the loading path is under test)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "my-resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    return path


def _check_embeds(e, dim):
    x = np.random.default_rng(0).integers(0, 255, (2, 224, 224, 3), dtype=np.uint8)
    v = e.embed(x)
    assert v.shape == (2, dim) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)


def test_configured_weights_file_is_used(resnet_weights):
    e = M.load_embedder(str(resnet_weights), allow_download=False)
    assert e.name == "resnet50-imagenet1k-v2" and not e.choice.fallback
    assert str(resnet_weights) in e.choice.source
    _check_embeds(e, 2048)


def test_a_configured_resnet50_file_is_checked_without_building_the_network(resnet_weights, tmp_path):
    """Its tensors' names and shapes are read from the file (no tensor loaded), so an unchanged
    rescan never builds the network; a file with other shapes is loaded, and refused, at once."""
    assert M.tensor_shapes(resnet_weights) == M.resnet50_shapes()
    e = M.load_embedder(str(resnet_weights), allow_download=False)
    assert e._impl is None  # built on the first photo
    other = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), other)
    assert M.tensor_shapes(other) is not None and M.tensor_shapes(other) != M.resnet50_shapes()
    with pytest.raises(M.WeightsError, match="not a ResNet-50"):
        M.load_embedder(str(other))
    wrapped = tmp_path / "wrapped.pth"  # {"state_dict": ...}, as training scripts save it
    torch.save({"state_dict": torch.load(resnet_weights, weights_only=True)}, wrapped)
    assert M.tensor_shapes(wrapped) == M.resnet50_shapes()
    assert M.tensor_shapes(tmp_path / "nothing.pth") is None


def test_weights_from_environment_variable(resnet_weights, monkeypatch):
    monkeypatch.setenv("DOPPEL_WEIGHTS", str(resnet_weights))
    assert M.load_embedder(allow_download=False).dim == 2048


def test_torchvision_cache_is_found(resnet_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    cached = M.torchvision_cache_dir() / "resnet50-11ad3fa6.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(resnet_weights.read_bytes())
    e = M.load_embedder(allow_download=False)
    assert e.name == "resnet50-imagenet1k-v2" and "cache" in e.choice.source


def test_bad_configured_file_is_an_error_not_a_silent_fallback(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"not": torch.zeros(1)}, bad)
    with pytest.raises(M.WeightsError, match="not a ResNet-50"):
        M.load_embedder(str(bad))
    with pytest.raises(M.WeightsError, match="not found"):
        M.load_embedder(str(tmp_path / "missing.pth"))


def test_offline_falls_back_with_a_notice():
    e = M.load_embedder(allow_download=False)
    assert e.choice.fallback and e.name == M.FALLBACK_NAME
    assert "fallback" in e.choice.notice
    _check_embeds(e, 1280)


def test_failed_download_falls_back(monkeypatch):
    monkeypatch.delenv("DOPPEL_OFFLINE")

    def no_network(url, dest, progress=None):
        raise OSError("network unreachable")

    monkeypatch.setattr(M, "_download", no_network)
    e = M.load_embedder(allow_download=True)
    assert e.choice.fallback and "download failed" in e.choice.notice


def test_fallback_model_recognises_real_content(embedder):
    """The fallback runs real ImageNet weights: a photo and its edit embed close, two scenes apart."""
    from tests import imagegen as ig

    a, b = ig.photo(1), ig.photo(2)
    batch = np.stack([np.asarray(im.resize((224, 224))) for im in (a, ig.brightened(a, 1.2), b)])
    v = embedder.embed(batch)
    assert v[0] @ v[1] > 0.9
    assert v[0] @ v[2] < v[0] @ v[1] - 0.1


@pytest.mark.parametrize("which", ["resnet50", "efficientnet-lite0"])
def test_folding_batchnorms_keeps_the_outputs(which, resnet_weights):
    """The embedder folds every BatchNorm into its convolution; in fp32 the feature maps must not move."""
    import copy

    from app.core import networks

    if which == "resnet50":
        state = torch.load(resnet_weights, weights_only=True)
        g = torch.Generator().manual_seed(1)
        for k, v in state.items():  # fresh init has mean 0, var 1: give the norms something to fold
            if k.endswith("running_mean") or k.endswith("bias"):
                state[k] = torch.randn(v.shape, generator=g) * 0.1
            elif k.endswith("running_var"):
                state[k] = torch.rand(v.shape, generator=g) + 0.5
        net = networks.ResNet50Features(state)
    else:
        net = networks.EfficientNetLite0Features(networks.load_state(M.fallback_weights_path()))
    net.eval()
    folded = networks.fold_batchnorms(copy.deepcopy(net))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        before, after = net(x), folded(x)
    assert torch.allclose(before, after, rtol=1e-3, atol=1e-3 * before.abs().max().item())


def test_lite0_in_place_steps_give_the_plain_computation():
    """The Lite0 blocks apply ReLU6 and the skip connection in place: each block must leave its
    input untouched and return exactly what the out-of-place formula gives."""
    import torch.nn.functional as F

    from app.core import networks

    net = networks.fold_batchnorms(networks.EfficientNetLite0Features(networks.load_state(M.fallback_weights_path())))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        x = F.relu6(net._conv_stem(x))
        skipped = 0
        for b in net._blocks:
            before = x.clone()
            y = F.relu6(b._expand_conv(x)) if b.expand else x
            y = b._project_conv(F.relu6(b._depthwise_conv(y)))
            want = x + y if b.skip else y
            got = b(x)
            assert torch.equal(x, before)
            assert torch.equal(got, want)
            skipped += b.skip
            x = got
        assert skipped >= 8  # the skip connections were exercised


@pytest.mark.parametrize("kernel,stride,size", [(3, 1, 14), (5, 1, 7), (3, 2, 112), (5, 2, 56), (3, 2, 7), (5, 2, 15)])
def test_same_padding_matches_tensorflow(kernel, stride, size):
    """TF 'SAME': output ceil(size / stride), zeros split evenly with the odd one at the end,
    whether the convolution pads by itself (even amounts) or is given a padded copy."""
    import math

    import torch.nn.functional as F

    from app.core import networks

    g = torch.Generator().manual_seed(kernel * 100 + stride * 10 + size)
    conv = networks._SamePadConv(8, 8, kernel, stride=stride, groups=8, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        conv.bias.copy_(torch.randn(conv.bias.shape, generator=g))
    x = torch.randn(2, 8, size, size + 1, generator=g)
    pads = [max((math.ceil(n / stride) - 1) * stride + kernel - n, 0) for n in (size + 1, size)]
    padded = F.pad(x, [pads[0] // 2, pads[0] - pads[0] // 2, pads[1] // 2, pads[1] - pads[1] // 2])
    want = F.conv2d(padded, conv.weight, conv.bias, stride, 0, 1, 8)
    with torch.inference_mode():
        got = conv(x)
    assert got.shape[-2:] == (math.ceil(size / stride), math.ceil((size + 1) / stride))
    assert torch.allclose(got, want, atol=1e-5)


def test_a_large_batch_runs_on_the_cpu_in_small_forward_passes_in_order(embedder):
    """Small forward passes are faster on a CPU (networks.CPU_BATCH); the vectors must still come
    back one per image, in the order given."""
    from app.core import networks

    impl = embedder.load()
    if impl.device.type != "cpu":
        pytest.skip("chunking applies to CPU inference only")
    n = networks.CPU_BATCH * 2 + 3
    x = np.random.default_rng(4).integers(0, 255, (n, 224, 224, 3), dtype=np.uint8)
    sizes = []
    hook = impl.net.register_forward_hook(lambda mod, inp, out: sizes.append(inp[0].shape[0]))
    try:
        v = embedder.embed(x)
    finally:
        hook.remove()
    assert sizes == [networks.CPU_BATCH, networks.CPU_BATCH, 3]
    alone = np.concatenate([embedder.embed(x[i:i + 1]) for i in range(n)])
    assert v.shape == alone.shape
    assert np.min(np.sum(v * alone, axis=1)) > 0.999  # row i is image i's vector


class _Served:
    """What urllib.request.urlopen returns, serving ``data``."""

    def __init__(self, data: bytes):
        import io
        self._f, self.headers = io.BytesIO(data), {"Content-Length": str(len(data))}

    def read(self, n=-1):
        return self._f.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_download_with_the_wrong_hash_is_rejected_and_the_fallback_runs(resnet_weights, tmp_path, monkeypatch):
    monkeypatch.delenv("DOPPEL_OFFLINE")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    # the test's random weights are served under torchvision's name: their hash is not 11ad3fa6
    monkeypatch.setattr(M.urllib.request, "urlopen", lambda url, timeout=None: _Served(resnet_weights.read_bytes()))
    e = M.load_embedder(allow_download=True)
    assert e.choice.fallback and "published hash" in e.choice.notice
    assert list((tmp_path / "th").rglob("*.pth*")) == []  # nothing unverified is left in the cache


def test_a_download_that_matches_its_published_hash_is_kept(resnet_weights, tmp_path, monkeypatch):
    import hashlib

    data = resnet_weights.read_bytes()
    name = f"resnet50-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    monkeypatch.setattr(M.urllib.request, "urlopen", lambda url, timeout=None: _Served(data))
    dest = tmp_path / name
    M._download(f"https://example.invalid/models/{name}", dest)
    assert dest.read_bytes() == data


def test_the_resnet50_built_here_computes_torchvisions_feature_maps(resnet_weights):
    """networks.py builds ResNet-50 itself (no torchvision import in a scan) from torchvision's
    state dict: the same feature maps, with batch norms that are not the identity."""
    torch.manual_seed(1)
    tv = torchvision.models.resnet50(weights=None)
    for m in tv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    tv.eval()
    from app.core import networks

    ours = networks.ResNet50Features(tv.state_dict()).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(torch.nn.Sequential(*list(tv.children())[:-2])(x), ours(x))
    with pytest.raises(RuntimeError, match="not a ResNet-50"):
        networks.ResNet50Features(torchvision.models.resnet18(weights=None).state_dict())


def test_resnet50_runs_prepacked_on_a_cpu_with_the_vectors_of_the_plain_network(resnet_weights):
    """ResNet-50's convolutions hold their weights in oneDNN's layout (reordered once); the
    vectors are those of the same network run layer by layer. EfficientNet's SAME-padded
    convolutions are never swapped for plain ones."""
    from app.core import networks

    state = torch.load(resnet_weights, weights_only=True)
    e = networks.TorchEmbedder(networks.ResNet50Features(state), "cpu")
    assert e._prepacked is not None
    x = np.random.default_rng(3).integers(0, 255, (10, 224, 224, 3), dtype=np.uint8)
    packed = e.embed(x)
    e._prepacked = None
    plain = e.embed(x)
    # random weights put every image's vector close to every other's: each prepacked vector must
    # be far closer to its own plain vector than any two images' plain vectors are to each other
    own = 1 - (packed * plain).sum(1)
    apart = 1 - plain @ plain.T
    assert own.max() < apart[~np.eye(len(x), dtype=bool)].min() / 10
    lite = networks.TorchEmbedder(networks.EfficientNetLite0Features(networks.load_state(M.fallback_weights_path())), "cpu")
    assert lite._prepacked is None
