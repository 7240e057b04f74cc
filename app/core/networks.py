"""The networks behind model.py, and the code that runs them (imports torch: loaded on first use).

Descriptors are GeM-pooled (p=3) final feature maps, L2-normalised: GeM keeps more of the
spatial detail that separates near-identical scenes than average pooling does.
"""
from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_state(path) -> dict:
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return sd


# --------------------------------------------------------------------------- architectures
def gem(x: torch.Tensor, p: float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    return F.avg_pool2d(x.clamp(min=eps).pow(p), x.shape[-2:]).pow(1.0 / p).flatten(1)


class _Bottleneck(nn.Module):
    """torchvision's ResNet-50 block (v1.5: the stride on the 3x3 convolution), under the same
    state-dict names."""

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = F.relu(self.bn2(self.conv2(y)), inplace=True)
        y = self.bn3(self.conv3(y))
        y += x if self.downsample is None else self.downsample(x)
        return F.relu(y, inplace=True)


class ResNet50Features(nn.Module):
    """ResNet-50 up to its last feature maps, built here rather than by torchvision (importing
    torchvision costs a scan's process about 3 s of CPU), with torchvision's state-dict names:
    any torchvision ResNet-50 state dict loads, strictly (the classifier's weights are not used)."""

    def __init__(self, state_dict: dict):
        super().__init__()
        stem = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1)]
        from app.core.model import RESNET50_STAGES

        layers, cin = [], 64
        for stage, (blocks, width) in enumerate(RESNET50_STAGES):
            layer = []
            for i in range(blocks):
                # the first block of each stage but the first halves the size
                layer.append(_Bottleneck(cin, width, 2 if stage and i == 0 else 1))
                cin = width * 4
            layers.append(nn.Sequential(*layer))
        self.body = nn.Sequential(*stem, *layers)
        names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
        wanted = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
        own = {f"{names[int(k.split('.', 1)[0])]}.{k.split('.', 1)[1]}": k for k in self.body.state_dict()}
        missing = own.keys() - wanted.keys()
        unexpected = wanted.keys() - own.keys()
        if missing or unexpected:
            raise RuntimeError(f"not a ResNet-50 state dict: missing {sorted(missing)[:3]}, "
                               f"unexpected {sorted(unexpected)[:3]}")
        self.body.load_state_dict({own[k]: v for k, v in wanted.items()}, strict=True)
        self.dim = 2048
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.plain_layers = True  # torch's own layers only (networks._prepacked)

    def forward(self, x):
        return self.body(x)

    def conv_bn_pairs(self):
        stem = self.body
        yield stem, "0", "1"
        for layer in list(stem.children())[4:]:
            for block in layer.children():
                for i in (1, 2, 3):
                    yield block, f"conv{i}", f"bn{i}"
                if block.downsample is not None:
                    yield block.downsample, "0", "1"


class _SamePadConv(nn.Conv2d):
    """TensorFlow 'SAME' padding, which these EfficientNet weights were trained with."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph % 2 == 0 and pw % 2 == 0:
            # even on both sides (every stride-1 layer): the convolution pads by itself. F.pad
            # fills and copies a whole new feature map (all of them: a fifth of the network's
            # time in bf16 here).
            return F.conv2d(x, self.weight, self.bias, self.stride, (ph // 2, pw // 2), self.dilation, self.groups)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])  # TF puts the odd one at the end
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
        # In place wherever the tensor is a fresh convolution output: the same values, and on a
        # CPU in bf16 the out-of-place ReLU6s and adds cost about a tenth of the network's time.
        y = F.relu6(self._bn0(self._expand_conv(x)), inplace=True) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)), inplace=True)
        y = self._bn2(self._project_conv(y))
        return y.add_(x) if self.skip else y


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

    def conv_bn_pairs(self):
        yield self, "_conv_stem", "_bn0"
        for b in self._blocks:
            if b.expand:
                yield b, "_expand_conv", "_bn0"
            yield b, "_depthwise_conv", "_bn1"
            yield b, "_project_conv", "_bn2"
        yield self, "_conv_head", "_bn1"

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
        for b in self._blocks:
            x = b(x)
        return F.relu6(self._bn1(self._conv_head(x)), inplace=True)


def fold_batchnorms(features: nn.Module) -> nn.Module:
    """Fold each inference-mode BatchNorm into the convolution that feeds it (``conv_bn_pairs``
    names them). Same outputs up to rounding; on a CPU in bf16 the network runs ~2x faster (the
    norms were separate passes over every feature map, each converting bf16 to fp32 and back)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    features.eval()
    for parent, conv_name, bn_name in list(features.conv_bn_pairs()):
        conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d), (conv_name, bn_name)
        setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))  # a copy of the same class, with a bias
        setattr(parent, bn_name, nn.Identity())
    return features


def _prepacked(features: nn.Module, dtype: torch.dtype) -> Optional[nn.Module]:
    """A CPU copy of the network whose convolutions hold their weights in oneDNN's own layout,
    reordered once, for networks built of standard layers only (``features.plain_layers``: a
    convolution with a forward of its own, such as EfficientNet's SAME padding, would be replaced
    by one without it). In eager mode each convolution reorders its weights on every call and
    converts its input and output layouts. None where torch cannot (no oneDNN, or a dtype it does
    not prepack): the network then runs as is."""
    if not getattr(features, "plain_layers", False) or dtype not in (torch.float32, torch.bfloat16):
        return None
    try:
        import copy
        import warnings

        from torch.utils import mkldnn

        with warnings.catch_warnings():  # its modules are TorchScript's, which torch deprecates
            warnings.simplefilter("ignore", FutureWarning)
            return mkldnn.to_mkldnn(copy.deepcopy(features).float().eval(), dtype)
    except Exception:  # pragma: no cover - a torch without oneDNN
        return None


# --------------------------------------------------------------------------- embedder
def choose_precision(device: torch.device) -> str:
    """bf16 on CPUs with native bf16 (AVX-512 BF16 / AMX: 2-2.7x faster here), fp16 on GPUs, else
    fp32. The candidates they propose hold the same true copies as fp32's, to one pair in 1,360, and
    the accuracy benchmark scores the same (docs/performance.md, bench/gpu_check.py;
    tests/test_scale_paths.py); DOPPEL_PRECISION=fp32 turns it off."""
    wanted = os.environ.get("DOPPEL_PRECISION", "auto").lower()
    if wanted in ("fp32", "bf16", "fp16"):
        return wanted
    if device.type == "cuda":
        return "fp16"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # an older or slimmer torch build
        native = False
    return "bf16" if device.type == "cpu" and native else "fp32"


# Images per forward pass on a CPU. Smaller batches keep the activations in cache: Lite0 (bf16,
# 2 cores) took 6.4-6.5 ms per image at 8 against 7.3-10.3 at 16 and 7.7-9.2 at 32 (4: 7.2-9.1);
# ResNet-50 was flat (27-32 ms at 4-32). Vectors are the same either way (max |diff| 0.0).
CPU_BATCH = 8


class TorchEmbedder:
    """Turns batches of 224x224 RGB uint8 arrays into L2-normalised float32 descriptors."""

    def __init__(self, features: nn.Module, device: Optional[str] = None):
        self.dim = features.dim
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = choose_precision(self.device)
        # Weights stored in the working precision rather than autocast: autocast casts every
        # weight again on every call (10 % of ResNet-50's time on this CPU).
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)
        folded = fold_batchnorms(features)
        self._prepacked = _prepacked(folded, self.dtype) if self.device.type == "cpu" else None
        self.net = folded.to(self.device, self.dtype)
        if self.device.type == "cpu":
            self.net = self.net.to(memory_format=torch.channels_last)
        self.threads: Optional[int] = None  # CPU threads for the network (None: torch's default)
        self._mean = torch.tensor(features.mean, device=self.device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(features.std, device=self.device).view(1, 3, 1, 1) * 255

    @torch.inference_mode()
    def embed(self, batch: np.ndarray) -> np.ndarray:
        """batch: (N, H, W, 3) uint8 -> (N, dim) float32, unit length."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        if self.device.type == "cpu" and self.threads and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        if self.device.type == "cpu" and len(batch) > CPU_BATCH:
            return np.concatenate([self._embed(batch[i:i + CPU_BATCH]) for i in range(0, len(batch), CPU_BATCH)])
        return self._embed(batch)

    def _embed(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.array(batch, dtype=np.uint8, copy=True)).to(self.device)
        x = x.permute(0, 3, 1, 2).float()
        # in place on the fresh float copy: same values, 0.66 -> 0.25 ms per image here
        x = x.sub_(self._mean).div_(self._std)
        if self._prepacked is not None:
            maps = self._prepacked(x.to_mkldnn(self.dtype)).to_dense(torch.float32)
        else:
            maps = self.net(x.to(self.dtype).contiguous(memory_format=torch.channels_last)).float()
        feats = gem(maps)
        return F.normalize(feats, dim=1).cpu().numpy().astype(np.float32)


