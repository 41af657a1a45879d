"""Every registered name works: each test is parametrised by a registry's ``names()``, so a new entry is
tested the day it is registered (no hand-written lists of names)."""

from __future__ import annotations

import importlib
from typing import get_args

import numpy as np
import pytest
import torch

from clinagent_lab.data.samplers import SAMPLER_WEIGHTS, sample_weights
from clinagent_lab.models.losses import LOSSES, make_loss
from clinagent_lab.models.mitigations import MITIGATION_ORDER, MITIGATIONS
from clinagent_lab.notebooks.render import template_path
from clinagent_lab.plan.refiner import RULES, RefineContext
from clinagent_lab.recipe import DebiasConfig, LossConfig, Recipe, RecipePatch, apply_patch
from clinagent_lab.spec import METRIC_NAMES, TaskType
from clinagent_lab.tasks import TASKS, get_backend

try:
    from plan_fixtures import drain_spec, make_fingerprint, make_iteration, make_recipe
except ImportError:  # tests collected as a package
    from tests.plan_fixtures import drain_spec, make_fingerprint, make_iteration, make_recipe


# ------------------------------------------------------------------------------------------------ tasks
def test_task_type_literal_is_the_registry():
    assert sorted(get_args(TaskType)) == TASKS.names()


@pytest.mark.parametrize("name", TASKS.names())
def test_task_backend_is_complete(name):
    backend = get_backend(name)
    assert template_path(backend.template).exists()
    impl = importlib.import_module(backend.module)
    for fn in ("make_datamodule", "make_module", "predict", "evaluate", "save_predictions", "load_predictions",
               "load_checkpoint"):
        assert callable(getattr(impl, fn)) and getattr(backend, fn) is getattr(impl, fn)
    module_name, cls = backend.lightning_module.split(":")
    assert hasattr(importlib.import_module(module_name), cls)
    assert set(backend.metrics) <= set(METRIC_NAMES) and backend.monitor.startswith("val_")
    assert set(backend.refiner_rules) <= set(RULES.names())
    recipe = Recipe(task_type=name, classes=["a", "b"])
    assert backend.monitors(recipe)[-1] == backend.monitor


# ------------------------------------------------------------------------------------------------ losses
@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_gives_a_finite_differentiable_value(name):
    torch.manual_seed(0)
    loss = make_loss(LossConfig(name=name), 3, class_weights=[1.0, 2.0, 1.0], n_groups=2,
                     debias_cfg=DebiasConfig())
    logits = torch.randn(8, 3, requires_grad=True)
    target = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    group = torch.tensor([0, 1] * 4)
    value = loss(logits, target, group)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ samplers
@pytest.mark.parametrize("name", SAMPLER_WEIGHTS.names())
def test_every_sampler_gives_a_distribution_or_plain_shuffling(name):
    labels = np.array([0] * 30 + [1] * 10)
    groups = np.array(([0] * 25 + [1] * 5) + ([0] * 2 + [1] * 8))
    weights = sample_weights(name, labels, groups)
    if weights is None:
        return
    assert weights.shape == labels.shape and (weights >= 0).all() and np.isclose(weights.sum(), 1.0)


# ------------------------------------------------------------------------------------------------ mitigations
@pytest.mark.parametrize("name", MITIGATIONS.names())
def test_every_mitigation_is_a_valid_recipe_change(name):
    mitigation = MITIGATIONS.get(name)
    assert mitigation.description.endswith(".") and (name == "none" or name in MITIGATION_ORDER)
    base = Recipe(task_type="binary_classification", classes=["no", "yes"])
    changes = mitigation.changes(base, "chest_drain", "chest_drain")
    patched = apply_patch(base, changes)  # validated by the Recipe schema
    assert patched.debias.method == name


# ------------------------------------------------------------------------------------------------ refiner rules
@pytest.mark.parametrize("name", RULES.names())
def test_every_refiner_rule_proposes_a_valid_patch_or_nothing(name):
    _, fn = RULES.get(name)
    best = make_iteration(1, {"auroc": 0.8, "sensitivity": 0.6, "specificity": 0.9})
    ctx = RefineContext(spec=drain_spec(), fingerprint=make_fingerprint(counts=[1000, 1000]), history=[best],
                        best=best, current=make_recipe(), annotations=[], tried_ideas=set())
    patch = fn(ctx)
    if patch is None:
        return
    assert isinstance(patch, RecipePatch) and patch.rationale and patch.idea
    apply_patch(ctx.current, patch)  # the patch fits the recipe schema


# ------------------------------------------------------------------------------------- light name lists
def _registries():
    from clinagent_lab import names
    from clinagent_lab.models.backbones import MODELS, TIMM_PREFIX
    from clinagent_lab.models.detector import DETECTORS

    assert names.TIMM_PREFIX == TIMM_PREFIX
    return [(names.MODEL_NAMES, MODELS), (names.DETECTOR_NAMES, DETECTORS),
            (names.MITIGATION_NAMES, MITIGATIONS), (names.LOSS_NAMES, LOSSES),
            (names.SAMPLER_NAMES, SAMPLER_WEIGHTS)]


def test_light_name_lists_equal_the_registries():
    for light, registry in _registries():
        assert list(light) == registry.names(), f"clinagent_lab/names.py lists other {registry.kind} names"


def test_recipe_literals_and_task_models_are_the_registries():
    from clinagent_lab.recipe import DataConfig

    assert sorted(get_args(LossConfig.model_fields["name"].annotation)) == LOSSES.names()
    assert sorted(get_args(DataConfig.model_fields["sampler"].annotation)) == SAMPLER_WEIGHTS.names()
    for name in TASKS.names():
        backend = get_backend(name)
        assert Recipe(task_type=name, classes=["a", "b"]).model.architecture in backend.model_names
        for arch, _ in backend.architectures.values():  # the initializer's choices validate
            assert Recipe(task_type=name, classes=["a", "b"], model={"architecture": arch}).model.architecture == arch


def test_names_module_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; import clinagent_lab.recipe, clinagent_lab.names; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("field, value, close", [
    ("model.architecture", "resnet81", "'resnet18'"),
    ("model.architecture", "smallcnn", "'small_cnn'"),
    ("debias.method", "grupdro", "'groupdro'"),
    ("debias.method", "group_balance", "'group_balanced'"),
])
def test_unknown_registry_name_is_refused_with_the_close_ones(field, value, close):
    from clinagent_lab.errors import RecipeError

    base = Recipe(task_type="binary_classification", classes=["no", "yes"])
    with pytest.raises(RecipeError) as info:
        apply_patch(base, {field: value})
    err = info.value
    assert f"'{value}'" in err.what and err.where == f"field '{field}'"
    assert f"did you mean {close}" in err.fix


def test_model_names_are_checked_per_task_and_timm_names_pass():
    from clinagent_lab.errors import RecipeError
    from clinagent_lab.recipe import recipe_error
    from pydantic import ValidationError

    base = Recipe(task_type="binary_classification", classes=["no", "yes"])
    assert apply_patch(base, {"model.architecture": "timm:resnet10t"}).model.architecture == "timm:resnet10t"
    with pytest.raises(RecipeError, match="unknown model 'resnet18' for detection") as info:
        apply_patch(base, {"task_type": "detection", "model.architecture": "resnet18"})
    assert "fasterrcnn_small_cnn" in info.value.fix
    with pytest.raises(RecipeError, match="unknown model 'fasterrcnn_small_cnn' for binary classification"):
        apply_patch(base, {"model.architecture": "fasterrcnn_small_cnn"})
    with pytest.raises(ValidationError) as exc:  # validated anywhere, not only through a patch
        Recipe.model_validate({**base.model_dump(), "debias": {"method": "dro"}})
    assert recipe_error(exc.value).where == "field 'debias.method'"


def test_cli_refuses_a_misspelt_name_before_reading_the_data(tmp_path, capsys):
    from clinagent_lab.cli import main

    out = tmp_path / "o"
    code = main(["run", "--intent", "pneumothorax on chest X-rays", "--data", str(tmp_path / "none"),
                 "--out", str(out), "--set", "debias.method=grupdro"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "unknown mitigation 'grupdro'" in err and "field 'debias.method'" in err and "'groupdro'" in err
    assert not out.exists()
