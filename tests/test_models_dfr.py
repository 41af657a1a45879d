import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from clinagent_lab.evaluation.dependence import partial_correlation
from clinagent_lab.models.classifier import ImageClassifier
from clinagent_lab.models.dfr import (DFRHead, balanced_cells, choose_l2, confounder_subspace, fit_balanced_head,
                                      select_holdout, select_refit_rows)
from clinagent_lab.models.dfr import _fit_logistic
from clinagent_lab.models.mitigations import MITIGATIONS
from clinagent_lab.recipe import Recipe, apply_patch


def planted(n, agreement, seed, spurious_scale=2.0):
    """Embeddings with a weak core feature (label + noise) and a strong spurious one (confounder), plus a
    mixed feature (core + confounder) and noise; the confounder agrees with the label in ``agreement``."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    z = torch.where(torch.rand(n, generator=g) < agreement, y, 1 - y)
    core = y + 1.0 * torch.randn(n, generator=g)
    x = torch.stack([core, spurious_scale * z + 0.3 * torch.randn(n, generator=g), core + 2.0 * z,
                     torch.randn(n, generator=g)], dim=1)
    return torch.cat([x, torch.randn(n, 12, generator=g)], dim=1), y, z


def score(w, b, x):
    return (x @ w.T + b).softmax(1)[:, 1].numpy()


def test_refit_removes_reliance_on_a_planted_spurious_feature():
    x, y, z = planted(3000, 0.95, seed=0)
    xt, yt, zt = planted(3000, 0.5, seed=1)  # test-like: confounder independent of the label
    w_erm, b_erm = _fit_logistic(x.double(), y, 2, 1e-3, 200)
    erm = partial_correlation(score(w_erm.float(), b_erm.float(), xt), zt.numpy(), yt.numpy())
    w, b = fit_balanced_head(x, y, z, 2)
    dfr = partial_correlation(score(w, b, xt), zt.numpy(), yt.numpy())
    assert erm > 0.5  # the plain head relies on the shortcut
    assert abs(dfr) < 0.25 * erm
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(yt.numpy(), score(w, b, xt)) > 0.7  # the core feature is kept


def within_label_cov(logit, y, z):
    """Covariance of logit and confounder inside each label."""
    out = []
    for v in (0, 1):
        m = y == v
        lc, zc = logit[m] - logit[m].mean(), z[m].double() - z[m].double().mean()
        out.append(float((lc * zc).mean()))
    return out


def test_erasure_zeroes_the_covariance_with_the_confounder_in_each_label():
    x, y, z = planted(2000, 0.9, seed=2)
    # the confounder pushes the mixed feature up in negatives and down in positives: a pooled covariance
    # would cancel out, the per-label one does not
    x[:, 2] = x[:, 0] + torch.where(y == 0, 2.0, -2.0) * z
    w, b = fit_balanced_head(x, y, z, 2, erase=True)
    assert max(abs(c) for c in within_label_cov((x @ (w[1] - w[0])).double(), y, z)) < 1e-6
    w2, _ = fit_balanced_head(x, y, z, 2, erase=False)
    assert max(abs(c) for c in within_label_cov((x @ (w2[1] - w2[0])).double(), y, z)) > 1e-2


def test_confounder_subspace_finds_the_shortcut_direction():
    x, y, z = planted(2000, 0.9, seed=3)
    basis = confounder_subspace(x, y, z)
    assert basis.shape[0] == 16 and 1 <= basis.shape[1] <= 2  # at most one direction per label (binary z)
    # the shortcut lives in columns 1 and 2, not in the pure-noise column 3
    assert abs(float(basis[3, 0])) < 0.1 < abs(float(basis[1, 0]))
    assert confounder_subspace(x, y, torch.zeros_like(z)).shape == (16, 0)


def test_balanced_subsets_use_every_cell_equally():
    y = np.array([0] * 50 + [0] * 5 + [1] * 10 + [1] * 40 + [1] * 3)
    g = np.array([0] * 50 + [1] * 5 + [0] * 10 + [1] * 40 + [-1] * 3)
    cells = balanced_cells(y, g)
    assert {k: len(v) for k, v in cells.items()} == {(0, 0): 50, (0, 1): 5, (1, 0): 10, (1, 1): 40}
    rows = select_refit_rows(y, g, max_per_cell=8, seed=0)
    assert len(rows) == 8 + 5 + 8 + 8 and not np.isin(np.arange(105, 108), rows).any()
    held = select_holdout(y, g, fraction=0.4, majority_ratio=3, seed=0)
    counts = {k: int(np.isin(v, held).sum()) for k, v in cells.items()}
    assert counts == {(0, 0): 6, (0, 1): 2, (1, 0): 4, (1, 1): 6}
    tiny = g.copy()
    tiny[50:52] = 0  # the (label 0, group 1) cell shrinks to 3 images: too few to hold any out
    assert len(select_holdout(y, tiny, 0.5)) == 0


def test_refit_needs_two_cells():
    x, y, _ = planted(100, 0.9, seed=4)
    with pytest.raises(ValueError, match="at least two label x confounder cells"):
        fit_balanced_head(x, torch.zeros_like(y), torch.zeros_like(y), 2)


def test_head_switches_on_when_fitted_and_survives_state_dict():
    x, y, z = planted(400, 0.9, seed=5)
    head = DFRHead(16, 2)
    assert not head.is_fitted
    head.fit(x, y, z, n_subsets=3)
    assert head.is_fitted
    other = DFRHead(16, 2)
    other.load_state_dict(head.state_dict())
    assert other.is_fitted and torch.equal(other(x), head(x))


# ------------------------------------------------------------------------------------- in the LightningModule
SIZE = 16


class Shortcut(Dataset):
    """Images whose label is a faint blob and whose confounder is a bright corner (90% agreement)."""

    def __init__(self, n, agreement, seed):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 2, (n,), generator=g)
        self.groups = torch.where(torch.rand(n, generator=g) < agreement, self.labels, 1 - self.labels)
        self.images = 0.3 * torch.randn(n, 1, SIZE, SIZE, generator=g)
        self.images[:, :, 6:10, 6:10] += 0.8 * self.labels[:, None, None, None]
        self.images[:, :, :3, :3] += 3.0 * self.groups[:, None, None, None]
        self.rows = np.arange(n)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i], "index": torch.tensor(int(self.rows[i])),
                "group": self.groups[i]}


class StubDataModule(L.LightningDataModule):
    def __init__(self, train, val):
        super().__init__()
        self.train, self.val = train, val

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=32, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=64)

    def dataloader_for(self, split):
        return DataLoader(self.train if split == "train" else self.val, batch_size=64)


def recipe(method, holdout=0.5):
    base = Recipe(task_type="binary_classification", classes=["no", "yes"])
    return apply_patch(base, {"model.architecture": "small_cnn", "model.width": 0.25, "model.in_channels": 1,
                              "data.image_size": SIZE, "data.batch_size": 32, "optim.lr": 3e-3,
                              **MITIGATIONS.get(method).changes(base, "c", "c"), "debias.refit_holdout": holdout})


def train(method, holdout=0.5):
    torch.manual_seed(0)
    model = ImageClassifier(recipe(method, holdout), n_groups=2)
    dm = StubDataModule(Shortcut(512, 0.9, seed=0), Shortcut(256, 0.9, seed=1))
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    return model.eval(), trainer


@pytest.mark.parametrize("holdout", [0.5, 0.0])
def test_module_refits_before_validation_and_predicts_with_the_refit_head(tmp_path, holdout):
    model, trainer = train("dfr", holdout)
    assert (model._holdout_rows is not None) == (holdout > 0)
    assert model.dfr_head is not None and model.dfr_head.is_fitted
    test = Shortcut(256, 0.5, seed=2)
    with torch.no_grad():
        feats = model.backbone.forward_features(test.images)
        trained = model.backbone.classify(feats).softmax(1)[:, 1].numpy()
        refit = model(test.images).softmax(1)[:, 1].numpy()
        direct = model.dfr_head(feats).softmax(1)[:, 1].numpy()
    assert np.allclose(refit, direct)
    y, z = test.labels.numpy(), test.groups.numpy()
    assert abs(partial_correlation(refit, z, y)) < abs(partial_correlation(trained, z, y))
    # the refitted head is part of the checkpoint
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(str(path))
    again = ImageClassifier.load_from_checkpoint(str(path), map_location="cpu", weights_only=False).eval()
    with torch.no_grad():
        assert torch.allclose(again(test.images), model(test.images), atol=1e-6)


def test_holdout_rows_are_kept_out_of_training():
    model, _ = train("dfr", holdout=0.5)
    held = model._holdout_rows
    assert held is not None and 0 < len(held) < 512
    n = min(32, len(held))
    batch = {"image": torch.zeros(n, 1, SIZE, SIZE), "label": torch.zeros(n, dtype=torch.long),
             "index": held[:n], "group": torch.zeros(n, dtype=torch.long)}
    model.train()
    model.log = lambda *args, **kwargs: None  # outside a Trainer loop
    assert model.training_step(batch, 0) is None  # nothing left to train on: the step is skipped
    batch["index"] = torch.arange(10_000, 10_000 + n)  # rows that are not held out do train
    assert model.training_step(batch, 0) is not None


def test_no_refit_without_a_refit_mitigation():
    model, _ = train("group_balanced")
    assert model.dfr_head is None and model._holdout_rows is None


def test_l2_is_chosen_from_the_grid_by_worst_cell_cross_validation():
    x, y, z = planted(800, 0.9, seed=6)
    xs = (x - x.mean(0)) / x.std(0)
    grid = (0.001, 0.01, 0.1, 10.0)
    chosen = choose_l2(xs.double(), y, z, 2, grid)
    assert chosen in grid and choose_l2(xs.double(), y, z, 2, grid[::-1]) == chosen  # order-free, seeded
    assert choose_l2(xs.double(), y, z, 2, [0.05]) == 0.05
    w, b, used = fit_balanced_head(x, y, z, 2, l2=grid, return_l2=True)
    assert used == chosen and w.shape == (2, x.shape[1])
