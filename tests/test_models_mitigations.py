import subprocess
import sys

import pytest

from clinagent_lab.errors import RecipeError, UnknownNameError
from clinagent_lab.models.mitigations import MITIGATION_ORDER, MITIGATIONS, Mitigation
from clinagent_lab.recipe import Recipe, apply_patch


@pytest.fixture
def recipe():
    return Recipe(task_type="binary_classification", classes=["benign", "malignant"])


def test_registry_and_order():
    assert MITIGATIONS.names() == ["balanced_adversarial", "balanced_dfr", "balanced_mmd", "balanced_mmd_dfr",
                                   "conditional_mmd", "counterfactual", "dfr", "gradient_reversal", "group_balanced", "groupdro",
                                   "none"]
    assert set(MITIGATION_ORDER) == set(MITIGATIONS.names()) - {"none"}
    assert all(isinstance(MITIGATIONS.get(n), Mitigation) and MITIGATIONS.get(n).description
               for n in MITIGATIONS.names())
    with pytest.raises(UnknownNameError, match="known: balanced_adversarial, balanced_dfr, balanced_mmd"):
        MITIGATIONS.get("reweigh")


@pytest.mark.parametrize("name,expected", [
    ("group_balanced", {"data.sampler": "group_balanced"}),
    ("gradient_reversal", {}),  # the adversary's weight is already positive: nothing else to change
    ("groupdro", {"loss.name": "groupdro"}),
    ("balanced_adversarial", {"data.sampler": "group_balanced"}),
    ("conditional_mmd", {}),
    ("balanced_mmd", {"data.sampler": "group_balanced"}),
    ("dfr", {"debias.refit_last_layer": True}),
    ("counterfactual", {"debias.counterfactual": 0.5}),
    ("balanced_dfr", {"data.sampler": "group_balanced", "debias.refit_last_layer": True}),
    ("balanced_mmd_dfr", {"data.sampler": "group_balanced", "debias.refit_last_layer": True}),
])
def test_changes_apply_to_recipe(recipe, name, expected):
    changes = MITIGATIONS.get(name).changes(recipe, "ruler", "has_ruler")
    assert changes == {"debias.method": name, "debias.confounder": "ruler", "debias.column": "has_ruler",
                       **expected}
    new = apply_patch(recipe, changes)
    assert (new.debias.method, new.debias.confounder, new.debias.column) == (name, "ruler", "has_ruler")


@pytest.mark.parametrize("name,field", [("gradient_reversal", "adversary_weight"),
                                        ("balanced_adversarial", "adversary_weight"),
                                        ("conditional_mmd", "mmd_weight"), ("balanced_mmd", "mmd_weight"),
                                        ("balanced_mmd_dfr", "mmd_weight")])
def test_penalty_weight_is_switched_on_only_when_zero(recipe, name, field):
    off = apply_patch(recipe, {f"debias.{field}": 0.0})
    assert MITIGATIONS.get(name).changes(off, "ruler", "has_ruler")[f"debias.{field}"] == 1.0
    chosen = apply_patch(recipe, {f"debias.{field}": 3.5})  # a weight the user chose stays
    changes = MITIGATIONS.get(name).changes(chosen, "ruler", "has_ruler")
    assert f"debias.{field}" not in changes
    assert getattr(apply_patch(chosen, changes).debias, field) == 3.5


def test_switching_undoes_previous_mitigation(recipe):
    dro = apply_patch(recipe, MITIGATIONS.get("groupdro").changes(recipe, "ruler", "has_ruler"))
    balanced = apply_patch(dro, MITIGATIONS.get("group_balanced").changes(dro, "ruler", "has_ruler"))
    assert (balanced.loss.name, balanced.data.sampler) == ("ce", "group_balanced")
    grl = apply_patch(balanced, MITIGATIONS.get("gradient_reversal").changes(balanced, "ruler", "has_ruler"))
    assert (grl.loss.name, grl.data.sampler, grl.debias.method) == ("ce", "random", "gradient_reversal")
    refit = apply_patch(grl, MITIGATIONS.get("balanced_mmd_dfr").changes(grl, "ruler", "has_ruler"))
    assert (refit.data.sampler, refit.debias.refit_last_layer) == ("group_balanced", True)
    plain = apply_patch(refit, MITIGATIONS.get("groupdro").changes(refit, "ruler", "has_ruler"))
    assert (plain.data.sampler, plain.debias.refit_last_layer, plain.loss.name) == ("random", False, "groupdro")
    off = apply_patch(dro, MITIGATIONS.get("none").changes(dro, None, None))
    assert (off.loss.name, off.debias.method, off.debias.column) == ("ce", "none", None)


def test_missing_column_is_an_error(recipe):
    with pytest.raises(RecipeError, match="needs the metadata column of confounder 'ruler'"):
        MITIGATIONS.get("groupdro").changes(recipe, "ruler", None)


def test_package_import_is_torch_free():
    code = "import sys, clinagent_lab.models as m; m.MITIGATIONS; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
