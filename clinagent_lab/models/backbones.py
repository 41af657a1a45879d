"""Classification backbones: a registry of trunks behind one small :class:`Backbone` interface.

Every backbone maps ``(N, C, H, W)`` images to ``(N, D)`` features (``forward_features``) and has a linear
``head`` to ``num_classes`` logits. Weights are never downloaded: ``ModelConfig.pretrained`` names timm
weights in the local cache or a local file (:mod:`clinagent_lab.models.weights`); the older
``ModelConfig.pretrained_path`` names a local state_dict file loaded leniently.

Example:
    >>> import torch
    >>> from clinagent_lab.recipe import ModelConfig
    >>> net = create_backbone(ModelConfig(architecture="small_cnn", in_channels=1, width=0.25), 3, 28)
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import RecipeError
from ..recipe import ModelConfig
from ..registry import Registry
from .weights import load_weights, resolve_weights

__all__ = [
    "MODELS",
    "TIMM_PREFIX",
    "Backbone",
    "GlobalAvgPool",
    "SmallCNN",
    "create_backbone",
    "load_pretrained",
    "make_pooling_deterministic",
]

#: ``timm:<name>`` builds any timm model by name.
TIMM_PREFIX = "timm:"
#: Images at most this size get the small-input ResNet stem (3x3 stride-1 conv1, no max-pool).
SMALL_INPUT_MAX = 64

#: A trunk builder: (config, image size) -> (module mapping images to (N, D) features, D).
TrunkBuilder = Callable[[ModelConfig, int], tuple[nn.Module, int]]
MODELS: Registry[TrunkBuilder] = Registry("model")


class Backbone(nn.Module):
    """A feature trunk, dropout and a linear head.

    Args:
        trunk: module mapping images to ``(N, feature_dim)`` features.
        feature_dim: width of the features.
        num_classes: number of logits.
        dropout: dropout probability before the head.
        name: architecture name (for ``repr`` and error messages).
    """

    def __init__(self, trunk: nn.Module, feature_dim: int, num_classes: int, dropout: float = 0.0,
                 name: str = "") -> None:
        super().__init__()
        self.name = name
        self.trunk = trunk
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.feature_dim, self.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features, shape ``(N, feature_dim)``."""
        return self.trunk(x).flatten(1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from features (dropout, then the head)."""
        return self.head(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.forward_features(x))


# ----------------------------------------------------------------------------------------------- pooling
class GlobalAvgPool(nn.Module):
    """Global average pool as a mean over H and W.

    Unlike ``nn.AdaptiveAvgPool2d``, its CUDA backward is deterministic, so training works with
    ``torch.use_deterministic_algorithms(True)`` (Lightning's ``deterministic=True``).
    """

    def __init__(self, keepdim: bool = False) -> None:
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1), keepdim=self.keepdim)


def _is_global_adaptive_avg(module: nn.Module) -> bool:
    return isinstance(module, nn.AdaptiveAvgPool2d) and module.output_size in (1, (1, 1))


def make_pooling_deterministic(module: nn.Module) -> nn.Module:
    """Replace each global ``nn.AdaptiveAvgPool2d`` in ``module`` by :class:`GlobalAvgPool`, in place."""
    for name, child in list(module.named_children()):
        if _is_global_adaptive_avg(child):
            setattr(module, name, GlobalAvgPool(keepdim=True))
        else:
            make_pooling_deterministic(child)
    return module


# ----------------------------------------------------------------------------------------------- small_cnn
def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """Four conv blocks (two 3x3 conv-BN-ReLU each), 2x max-pool after the first three, global average pool.

    Channels are ``(32, 64, 128, 256) * width``. Fast on CPU at 28-64 px.
    """

    BASE_CHANNELS = (32, 64, 128, 256)

    def __init__(self, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        chans = [max(8, int(round(c * width))) for c in self.BASE_CHANNELS]
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(chans):
            layers += _conv_bn(c_in, c_out) + _conv_bn(c_out, c_out)
            if i < len(chans) - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            c_in = c_out
        layers.append(GlobalAvgPool())
        self.body = nn.Sequential(*layers)
        self.out_channels = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _build_small_cnn(cfg: ModelConfig, image_size: int) -> tuple[nn.Module, int]:
    net = SmallCNN(cfg.in_channels, cfg.width)
    return net, net.out_channels


# -------------------------------------------------------------------------------------------------- resnets
def _resnet_builder(arch: str) -> TrunkBuilder:
    def build(cfg: ModelConfig, image_size: int) -> tuple[nn.Module, int]:
        from torchvision import models as tvm  # the training stack takes seconds to import

        net = getattr(tvm, arch)(weights=None)
        if image_size <= SMALL_INPUT_MAX:
            net.conv1 = nn.Conv2d(cfg.in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif cfg.in_channels != 3:
            net.conv1 = nn.Conv2d(cfg.in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        dim = net.fc.in_features
        net.fc = nn.Identity()
        return net, dim

    build.__doc__ = f"torchvision {arch} (weights=None); small-input stem at <= {SMALL_INPUT_MAX} px."
    return build


# ----------------------------------------------------------------------------------------------------- timm
def _timm_trunk(timm_name: str, cfg: ModelConfig) -> tuple[nn.Module, int]:
    import timm  # the training stack takes seconds to import

    if not timm.is_model(timm_name):
        raise RecipeError(f"unknown timm model '{timm_name}'", where="field 'model.architecture'",
                          fix="use a name from timm.list_models(), e.g. 'timm:resnet10t'")
    net = timm.create_model(timm_name, pretrained=False, num_classes=0, in_chans=cfg.in_channels)
    return net, int(net.num_features)


def _timm_builder(timm_name: str) -> TrunkBuilder:
    def build(cfg: ModelConfig, image_size: int) -> tuple[nn.Module, int]:
        return _timm_trunk(timm_name, cfg)

    build.__doc__ = f"timm {timm_name} (pretrained=False)."
    return build


def _build_timm_passthrough(cfg: ModelConfig, image_size: int) -> tuple[nn.Module, int]:
    """Any timm model: ``architecture="timm:<name>"``."""
    return _timm_trunk(cfg.architecture[len(TIMM_PREFIX):], cfg)


# --------------------------------------------------------------------------------------------- pretrained
def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Accept a bare state_dict, ``{"state_dict": ...}`` (Lightning) or ``{"model": ...}``."""
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise RecipeError("pretrained weights file does not hold a state_dict", where=str(path),
                          fix="save weights with torch.save(model.state_dict(), path)")
    return dict(obj)


def _strip_prefixes(state: dict[str, torch.Tensor], target: nn.Module) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes (``model.``, ``backbone.``, ``module.``) until keys match ``target``."""
    own = set(target.state_dict())
    for _ in range(3):
        if any(k in own for k in state):
            break
        firsts = {k.split(".", 1)[0] for k in state if "." in k}
        if len(firsts) != 1:
            break
        prefix = firsts.pop() + "."
        state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
    return state


def _match_count(state: Mapping[str, torch.Tensor], target: nn.Module) -> int:
    own = target.state_dict()
    return sum(1 for k, v in state.items() if k in own and own[k].shape == v.shape)


def load_pretrained(model: Backbone, path: str | Path) -> Backbone:
    """Load a local state_dict into ``model`` (``strict=False``); never downloads.

    The file may hold the whole :class:`Backbone` (e.g. a previous run) or just its trunk (e.g. a torchvision
    ``resnet18`` state_dict). Keys with a different shape (a head with another number of classes, a stem with
    other channels) are skipped. Missing, unexpected and skipped keys are reported with ``warnings.warn``.

    Raises:
        RecipeError: the file does not exist or does not hold a state_dict.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise RecipeError(f"pretrained weights file not found: {path}", where="field 'model.pretrained_path'",
                          fix="point model.pretrained_path at a local .pt/.pth state_dict, or set it to null")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files
        raise RecipeError(f"cannot read pretrained weights: {exc}", where=str(path),
                          fix="save weights with torch.save(model.state_dict(), path)") from exc
    state = _unwrap_state_dict(raw, path)
    candidates = [(model, _strip_prefixes(state, model)), (model.trunk, _strip_prefixes(state, model.trunk))]
    target, state = max(candidates, key=lambda c: _match_count(c[1], c[0]))
    own = target.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    state = {k: v for k, v in state.items() if k not in mismatched}
    result = target.load_state_dict(state, strict=False)
    missing = list(result.missing_keys)
    if target is model.trunk:  # a trunk-only file leaves the head (and its keys) at their initial values
        missing = [f"trunk.{k}" for k in missing] + [f"head.{k}" for k in model.head.state_dict()]
    _warn_keys(path, missing, result.unexpected_keys, mismatched)
    return model


def _warn_keys(path: Path, missing: list[str], unexpected: list[str], mismatched: list[str]) -> None:
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape-mismatched, skipped",
                                                                          mismatched)):
        if keys:
            shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
            warnings.warn(f"pretrained weights {path}: {label} keys: {shown}", stacklevel=3)


# ------------------------------------------------------------------------------------------------- factory
def create_backbone(cfg: ModelConfig, num_classes: int, image_size: int) -> Backbone:
    """Build the backbone named by ``cfg.architecture`` (a registry name or ``timm:<name>``).

    Raises:
        UnknownNameError: the name is not registered (the message lists the known names).
        RecipeError: ``pretrained_path`` does not exist, or an unknown ``timm:`` name.
    """
    name = cfg.architecture
    key = f"{TIMM_PREFIX}<name>" if name.startswith(TIMM_PREFIX) else name
    trunk, dim = MODELS.get(key)(cfg, image_size)
    make_pooling_deterministic(trunk)
    model = Backbone(trunk, dim, num_classes, cfg.dropout, name=name)
    if cfg.pretrained_path:
        load_pretrained(model, cfg.pretrained_path)
    if cfg.pretrained:
        weights = resolve_weights(cfg.pretrained, cfg.pretrained_sha256)
        arch = name[len(TIMM_PREFIX):] if name.startswith(TIMM_PREFIX) else name
        if weights.architecture and weights.architecture != arch.split(".", 1)[0]:
            raise RecipeError(f"pretrained '{weights.name}' is a {weights.architecture}, the recipe builds {name}",
                              where="field 'model.architecture'",
                              fix=f"set model.architecture to '{TIMM_PREFIX}{weights.architecture}'")
        load_weights(trunk, weights)
    return model


MODELS.register("small_cnn", _build_small_cnn)
for _arch in ("resnet18", "resnet34", "resnet50"):
    MODELS.register(_arch, _resnet_builder(_arch))
for _arch in ("efficientnet_b0", "convnext_atto"):
    MODELS.register(_arch, _timm_builder(_arch))
MODELS.register(f"{TIMM_PREFIX}<name>", _build_timm_passthrough)
