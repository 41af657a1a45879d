import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clinagent_lab.errors import RecipeError, UnknownNameError
from clinagent_lab.models.backbones import MODELS, TIMM_PREFIX, Backbone, GlobalAvgPool, create_backbone
from clinagent_lab.recipe import ModelConfig

BUILT_IN = [n for n in MODELS.names() if not n.startswith(TIMM_PREFIX)]


def test_registry_lists_expected_models():
    expected = {"small_cnn", "resnet18", "resnet34", "resnet50", "efficientnet_b0", "convnext_atto"}
    assert expected <= set(BUILT_IN)
    with pytest.raises(UnknownNameError, match="known: convnext_atto, efficientnet_b0, resnet18"):
        create_backbone(ModelConfig(architecture="vgg_huge"), 2, 32)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", BUILT_IN)
def test_forward_shapes(name, in_channels):
    torch.manual_seed(0)
    net = create_backbone(ModelConfig(architecture=name, in_channels=in_channels, width=0.5), 3, 32).eval()
    assert isinstance(net, Backbone) and isinstance(net.head, nn.Linear)
    x = torch.randn(2, in_channels, 32, 32)
    with torch.no_grad():
        feats = net.forward_features(x)
        logits = net(x)
    assert feats.shape == (2, net.feature_dim)
    assert logits.shape == (2, 3)
    torch.testing.assert_close(logits, net.head(feats))  # eval: dropout is identity
    # AdaptiveAvgPool2d has no deterministic CUDA backward; every trunk pools with GlobalAvgPool instead
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in net.modules())
    assert any(isinstance(m, GlobalAvgPool) for m in net.modules())


def test_global_avg_pool_matches_adaptive():
    x = torch.randn(2, 4, 5, 7)
    torch.testing.assert_close(GlobalAvgPool(keepdim=True)(x), F.adaptive_avg_pool2d(x, 1))
    torch.testing.assert_close(GlobalAvgPool()(x), F.adaptive_avg_pool2d(x, 1).flatten(1))


def test_timm_passthrough():
    net = create_backbone(ModelConfig(architecture="timm:resnet10t", in_channels=1), 4, 32).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 1, 32, 32)).shape == (2, 4)
    with pytest.raises(RecipeError, match="unknown timm model 'no_such_net'"):
        create_backbone(ModelConfig(architecture="timm:no_such_net"), 2, 32)


def test_small_cnn_width_scales_features():
    narrow = create_backbone(ModelConfig(architecture="small_cnn", width=0.5), 2, 28)
    wide = create_backbone(ModelConfig(architecture="small_cnn", width=1.0), 2, 28)
    assert (narrow.feature_dim, wide.feature_dim) == (128, 256)
    assert any(isinstance(m, nn.BatchNorm2d) for m in wide.modules())


def _layer4_size(net: Backbone, size: int) -> tuple[int, int]:
    out = {}

    def hook(module, inputs, output):
        out["s"] = tuple(output.shape[-2:])

    net.trunk.layer4.register_forward_hook(hook)
    with torch.no_grad():
        net.eval()(torch.randn(1, 3, size, size))
    return out["s"]


def test_small_input_resnet_stem():
    small = create_backbone(ModelConfig(architecture="resnet18"), 2, 32)
    assert small.trunk.conv1.kernel_size == (3, 3) and small.trunk.conv1.stride == (1, 1)
    assert isinstance(small.trunk.maxpool, nn.Identity)
    assert _layer4_size(small, 32) == (4, 4)  # only the 3 stage strides: 32 / 8
    big = create_backbone(ModelConfig(architecture="resnet18", in_channels=1), 2, 96)
    assert big.trunk.conv1.kernel_size == (7, 7) and big.trunk.conv1.in_channels == 1
    assert isinstance(big.trunk.maxpool, nn.MaxPool2d)


def test_dropout_before_head():
    net = create_backbone(ModelConfig(architecture="small_cnn", width=0.25, dropout=0.5), 2, 16)
    assert net.dropout.p == 0.5
    net.train()
    feats = torch.ones(64, net.feature_dim)
    torch.manual_seed(0)
    a = net.classify(feats)
    torch.manual_seed(1)
    b = net.classify(feats)
    assert not torch.allclose(a, b)


def test_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(architecture="small_cnn", width=0.25, in_channels=1)
    src = create_backbone(cfg, 3, 16).eval()
    path = tmp_path / "w.pt"
    torch.save(src.state_dict(), path)
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exact match: no warning
        dst = create_backbone(cfg.model_copy(update={"pretrained_path": str(path)}), 3, 16).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x))


def test_pretrained_trunk_only_and_head_mismatch_warns(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(architecture="small_cnn", width=0.25)
    src = create_backbone(cfg, 5, 16).eval()
    trunk_path, full_path = tmp_path / "trunk.pt", tmp_path / "full.pt"
    torch.save(src.trunk.state_dict(), trunk_path)
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()}}, full_path)
    x = torch.randn(2, 3, 16, 16)
    for path in (trunk_path, full_path):
        with pytest.warns(UserWarning, match="head"):
            dst = create_backbone(cfg.model_copy(update={"pretrained_path": str(path)}), 2, 16).eval()
        with torch.no_grad():
            torch.testing.assert_close(dst.forward_features(x), src.forward_features(x))


def test_pretrained_missing_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(RecipeError, match="nope.pt") as err:
        create_backbone(ModelConfig(architecture="small_cnn", pretrained_path=str(missing)), 2, 16)
    assert err.value.where == "field 'model.pretrained_path'"
