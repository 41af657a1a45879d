import math

import pytest
import torch

from clinagent_lab.models.grl import GradientReversal, GradientReversalLayer, dann_lambda, grad_reverse


@pytest.mark.parametrize("lambda_", [0.0, 0.3, 1.0, 2.5])
def test_gradient_is_reversed_and_scaled(lambda_):
    torch.manual_seed(0)
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(3, 2)
    # reference: gradient of the same function without reversal
    x_ref = x.detach().clone().requires_grad_(True)
    ((x_ref @ w) ** 2).sum().backward()
    ((GradientReversal.apply(x, lambda_) @ w) ** 2).sum().backward()
    torch.testing.assert_close(x.grad, -lambda_ * x_ref.grad)


def test_forward_is_identity_and_layer_uses_lambda():
    x = torch.randn(5, 2, requires_grad=True)
    layer = GradientReversalLayer(0.7)
    y = layer(x)
    torch.testing.assert_close(y, x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, -0.7))
    assert "0.7" in repr(layer)


def test_grad_reverse_gradcheck_matches_negated_identity():
    x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    (jac,) = torch.autograd.functional.jacobian(lambda t: grad_reverse(t, 2.0), (x,))
    torch.testing.assert_close(jac, -2.0 * torch.eye(3, dtype=torch.float64))


def test_dann_lambda_values():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_lambda(0.5) == pytest.approx(0.986614, abs=1e-6)
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert dann_lambda(1.0, gamma=1.0) == pytest.approx(0.462117, abs=1e-6)
    assert dann_lambda(2.0) == dann_lambda(1.0)  # clipped
