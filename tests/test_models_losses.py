import pytest
import torch
import torch.nn.functional as F

from clinagent_lab.errors import RecipeError, UnknownNameError
from clinagent_lab.models.losses import LOSSES, FocalLoss, GroupDROLoss, group_cells, make_loss
from clinagent_lab.recipe import DebiasConfig, LossConfig


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 3, generator=g)
    target = torch.randint(0, 3, (16,), generator=g)
    return logits, target


def test_registry_names():
    assert LOSSES.names() == ["ce", "focal", "groupdro", "weighted_ce"]
    with pytest.raises(UnknownNameError, match="known: ce, focal"):
        LOSSES.get("hinge")


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_ce_matches_torch(batch, smoothing):
    logits, target = batch
    loss = make_loss(LossConfig(name="ce", label_smoothing=smoothing), 3)
    ref = F.cross_entropy(logits, target, label_smoothing=smoothing)
    torch.testing.assert_close(loss(logits, target), ref)


def test_focal_equals_ce_at_gamma_zero(batch):
    logits, target = batch
    loss = make_loss(LossConfig(name="focal", focal_gamma=0.0), 3)
    torch.testing.assert_close(loss(logits, target), F.cross_entropy(logits, target))


def test_focal_with_weights_equals_weighted_ce_at_gamma_zero(batch):
    logits, target = batch
    w = torch.tensor([1.0, 2.0, 0.5])
    torch.testing.assert_close(FocalLoss(0.0, w)(logits, target), F.cross_entropy(logits, target, weight=w))


def test_focal_down_weights_easy_examples():
    easy = torch.tensor([[4.0, 0.0]])  # p_y ~ 0.98
    hard = torch.tensor([[0.0, 1.0]])  # p_y ~ 0.27
    y = torch.tensor([0])
    focal = FocalLoss(2.0)
    ratio_easy = focal(easy, y) / F.cross_entropy(easy, y)
    ratio_hard = focal(hard, y) / F.cross_entropy(hard, y)
    p_easy = torch.softmax(easy, 1)[0, 0]
    torch.testing.assert_close(ratio_easy, (1 - p_easy) ** 2)  # hand-computed modulating factor
    assert ratio_easy < 0.001 < 0.5 < ratio_hard < 1.0
    assert focal(easy, y) < F.cross_entropy(easy, y)


def test_weighted_ce_matches_torch(batch):
    logits, target = batch
    w = [0.2, 1.0, 3.0]
    loss = make_loss(LossConfig(name="weighted_ce"), 3, class_weights=w)
    torch.testing.assert_close(loss(logits, target), F.cross_entropy(logits, target, weight=torch.tensor(w)))
    # explicit recipe weights win over data-derived ones
    loss = make_loss(LossConfig(name="weighted_ce", class_weights=[1.0, 1.0, 5.0]), 3, class_weights=w)
    ref = F.cross_entropy(logits, target, weight=torch.tensor([1.0, 1.0, 5.0]))
    torch.testing.assert_close(loss(logits, target), ref)


def test_weighted_ce_errors():
    with pytest.raises(RecipeError, match="needs class weights"):
        make_loss(LossConfig(name="weighted_ce"), 3)
    with pytest.raises(RecipeError, match="do not fit 3 classes"):
        make_loss(LossConfig(name="weighted_ce"), 3, class_weights=[1.0, 2.0])


def test_groupdro_q_moves_toward_worst_group():
    dro = GroupDROLoss(num_classes=2, n_groups=0, eta=0.5)
    torch.testing.assert_close(dro.q, torch.tensor([0.5, 0.5]))
    losses = torch.tensor([0.2, 1.5])  # group 1 is worst
    for _ in range(5):
        out = dro.robust_loss(losses)
    expected = torch.softmax(0.5 * 5 * losses, 0)  # closed form of 5 exponentiated-gradient steps
    torch.testing.assert_close(dro.q, expected)
    assert dro.q[1] > 0.8
    torch.testing.assert_close(out, losses @ expected)
    dro.eval()
    dro.robust_loss(torch.tensor([5.0, 0.0]))
    torch.testing.assert_close(dro.q, expected)  # frozen outside training


def test_groupdro_cells_and_forward_against_manual():
    labels = torch.tensor([0, 0, 1, 1, 1, 0])
    codes = torch.tensor([0, 1, 1, -1, 1, 0])
    cells = group_cells(labels, codes, n_groups=2)
    assert cells.tolist() == [0, 1, 4, 5, 4, 0]  # label * 3 + code, unknown -> slot 2
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 2, generator=g)
    dro = make_loss(LossConfig(name="groupdro"), 2, n_groups=2, debias_cfg=DebiasConfig(groupdro_eta=0.1))
    assert isinstance(dro, GroupDROLoss) and dro.n_cells == 6 and dro.eta == 0.1
    out = dro(logits, labels, group=codes)
    per = F.cross_entropy(logits, labels, reduction="none")
    gl = torch.zeros(6)
    for c in range(6):
        if (cells == c).any():
            gl[c] = per[cells == c].mean()
    q = torch.full((6,), 1 / 6) * torch.exp(0.1 * gl)
    q = q / q.sum()
    torch.testing.assert_close(dro.q, q)
    torch.testing.assert_close(out, gl @ q)
    assert "q" in dro.state_dict()


def test_groupdro_rejects_out_of_range_codes():
    from clinagent_lab.errors import DataValidationError

    with pytest.raises(DataValidationError, match=r"\[-1, 1\]"):
        group_cells(torch.tensor([0, 1]), torch.tensor([0, 2]), n_groups=2)
