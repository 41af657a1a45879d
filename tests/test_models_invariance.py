import pytest
import torch

from clinagent_lab.models.invariance import conditional_mmd, gaussian_mmd2


def cells(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    z = (torch.arange(n) // 2) % 2
    return torch.randn(n, 8, generator=g), y, z, g


def test_zero_for_identical_groups_and_positive_for_shifted():
    a = torch.randn(20, 3)
    assert float(gaussian_mmd2(a, a, torch.tensor(1.0))) == pytest.approx(0.0, abs=1e-6)
    assert float(gaussian_mmd2(a, a + 2.0, torch.tensor(1.0))) > 0.1


def test_penalises_the_confounder_within_label_not_the_label():
    x, y, z, _ = cells()
    base = float(conditional_mmd(x, y, z))
    by_label = float(conditional_mmd(x + 3.0 * y[:, None].float(), y, z))  # the label may shape the features
    by_confounder = float(conditional_mmd(x + 3.0 * z[:, None].float(), y, z))
    assert by_label == pytest.approx(base, abs=0.05)
    assert by_confounder > 5 * base + 0.1


def test_unknown_groups_and_small_cells_are_ignored():
    x, y, z, _ = cells(16)
    assert float(conditional_mmd(x, y, torch.full_like(z, -1))) == 0.0
    lone = z.clone()
    lone[:] = 0
    lone[0] = 1  # one image in the (label 0, group 1) cell: below min_count, no pair to compare
    assert float(conditional_mmd(x, y, lone)) == 0.0


def test_categorical_confounder_and_gradient():
    x, y, _, g = cells(96)
    z = torch.arange(96) % 3
    x = x.clone().requires_grad_(True)
    shifted = x + torch.nn.functional.one_hot(z, 3).float().repeat(1, 3)[:, :8] * 2.0
    loss = conditional_mmd(shifted, y, z)
    loss.backward()
    assert float(loss) > 0.05 and x.grad is not None and float(x.grad.abs().sum()) > 0
