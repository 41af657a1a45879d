"""Pretrained weights, offline: timm names from a local HF cache layout, local files, and what goes wrong."""

from __future__ import annotations

import hashlib

import pytest
import torch

from clinagent_lab.errors import RecipeError
from clinagent_lab.models.backbones import create_backbone
from clinagent_lab.models.weights import cached_weights, resolve_weights
from clinagent_lab.recipe import ModelConfig

NAME = "test_resnet.r160_in1k"  # timm's tiny test network (0.4 M parameters)


def _timm_state(seed: int) -> dict[str, torch.Tensor]:
    import timm

    torch.manual_seed(seed)
    return timm.create_model("test_resnet", num_classes=1000).state_dict()


def _put_in_hub_cache(hub, state, name=NAME, commit="0" * 40):
    """Write ``state`` where ``huggingface_hub`` keeps ``timm/<name>``: refs/main -> snapshots/<commit>/."""
    from safetensors.torch import save_file

    repo = hub / f"models--timm--{name}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snap / "model.safetensors"))
    return snap / "model.safetensors"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    folder = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    return folder


def _first_layer(model, x):
    return model.trunk.conv1[0](x)


def test_cached_timm_weights_are_loaded_and_change_the_first_layer(hub):
    path = _put_in_hub_cache(hub, _timm_state(1))
    found = resolve_weights(NAME)
    assert found.kind == "hub" and found.path == path and found.architecture == "test_resnet"
    assert found.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [w["name"] for w in cached_weights()] == [NAME]
    cfg = ModelConfig(architecture="timm:test_resnet", pretrained=NAME, in_channels=3)
    model = create_backbone(cfg, 2, 64)
    state = _timm_state(1)
    torch.testing.assert_close(model.trunk.conv1[0].weight, state["conv1.0.weight"])
    x = torch.randn(2, 3, 32, 32)
    scratch = create_backbone(ModelConfig(architecture="timm:test_resnet"), 2, 64)
    assert not torch.allclose(_first_layer(model, x), _first_layer(scratch, x))
    _put_in_hub_cache(hub, _timm_state(2), commit="1" * 40)  # new snapshot: other tensors, other output
    other = create_backbone(cfg, 2, 64)
    assert not torch.allclose(_first_layer(model, x), _first_layer(other, x))
    gray = create_backbone(ModelConfig(architecture="timm:test_resnet", pretrained=NAME, in_channels=1), 2, 64)
    torch.testing.assert_close(gray.trunk.conv1[0].weight, _timm_state(2)["conv1.0.weight"].sum(1, keepdim=True))


def test_files_in_every_form_are_loaded(tmp_path, hub):
    state = _timm_state(3)
    from safetensors.torch import save_file

    forms = {"bare.pt": state, "timm.pth": {"state_dict": state, "epoch": 3},
             "wrapped.pth": {"model": {f"module.{k}": v for k, v in state.items()}}}
    for name, obj in forms.items():
        torch.save(obj, tmp_path / name)
    save_file(state, str(tmp_path / "w.safetensors"))
    for name in [*forms, "w.safetensors"]:
        cfg = ModelConfig(architecture="timm:test_resnet", pretrained=str(tmp_path / name))
        model = create_backbone(cfg, 3, 64)
        torch.testing.assert_close(model.trunk.conv1[0].weight, state["conv1.0.weight"])
    found = resolve_weights(str(tmp_path / "w.safetensors"))
    assert found.kind == "file" and len(found.sha256) == 64


def test_bad_weights_are_named(tmp_path, hub):
    state = _timm_state(4)
    state["layer1.0.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save(state, tmp_path / "odd.pt")
    with pytest.raises(RecipeError, match="layer1.0.conv1.weight.*shape"):
        create_backbone(ModelConfig(architecture="timm:test_resnet", pretrained=str(tmp_path / "odd.pt")), 2, 64)
    with pytest.raises(RecipeError, match="no tensor"):
        create_backbone(ModelConfig(architecture="small_cnn", pretrained=str(tmp_path / "odd.pt")), 2, 64)
    with pytest.raises(RecipeError, match="resnet18.a1_in1k"):
        resolve_weights("resnet18.a1_in1kk")
    with pytest.raises(RecipeError, match="weights pull resnet18.a1_in1k"):
        resolve_weights("resnet18.a1_in1k")  # a real name, not in this (empty) cache
    with pytest.raises(RecipeError, match="not found"):
        resolve_weights(str(tmp_path / "missing.pt"))
    _put_in_hub_cache(hub, _timm_state(5))
    with pytest.raises(RecipeError, match="changed"):
        resolve_weights(NAME, expected_sha256="0" * 64)
    with pytest.raises(RecipeError, match="timm:test_resnet"):
        create_backbone(ModelConfig(architecture="resnet18", pretrained=NAME), 2, 64)
