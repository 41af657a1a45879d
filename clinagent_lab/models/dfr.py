"""Deep Feature Reweighting (Kirichenko et al. 2022) with label-conditional confounder erasure.

After (or while) the network trains as usual, its last layer is refitted on the penultimate features of
**group-balanced** subsets of images: every label x confounder cell contributes the same number of images, so
within the subset the confounder says nothing about the label. Several random subsets are fitted
(L2-regularised logistic regression on standardised features) and their weights averaged, which uses the
majority cells' images without letting any one draw dominate. The L2 strength is chosen from a grid by
2-fold cross-validation inside the cells, on the worst cell's accuracy (the DFR criterion).

The images should be ones the network did not train on (:func:`select_holdout` keeps a share of every cell
out of training): a network fits its few training images that contradict the shortcut, so their features
understate how much the confounder moves the features of a new image.

Before the fit, the features are projected onto the orthogonal complement of their **cross-covariance
with the confounder within each label** (the confounder's one-hot codes and the features both centred within
the label): a linear head on the projected features then has exactly zero covariance with the confounder in
every label on the refit data, i.e. the score cannot rise or fall with the confounder once the label is known.
This is a linear concept erasure (as in INLP / LEACE) conditioned on the label, so information about the
confounder that also predicts the label through the disease itself is kept.

Nothing here knows what the confounder looks like: it works for any binary or categorical column.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.randint(0, 2, (400,), generator=g)
    >>> z = torch.where(torch.rand(400, generator=g) < 0.9, y, 1 - y)       # confounder, 90% agreement
    >>> x = torch.cat([torch.stack([y + 0.8 * torch.randn(400, generator=g), 3.0 * z], dim=1),
    ...                torch.randn(400, 6, generator=g)], dim=1)           # col 0: the finding, col 1: shortcut
    >>> w, b = fit_balanced_head(x, y, z, num_classes=2)
    >>> d = w[1] - w[0]                                    # binary: the logit difference's weights
    >>> bool(abs(d[1]) < 0.1 * abs(d[0]))                  # little weight left on the shortcut column
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import normalise_images

__all__ = ["DFRHead", "fit_balanced_head", "balanced_cells", "confounder_subspace", "select_refit_rows",
           "select_holdout", "collect_features", "choose_l2", "DFR_DEFAULTS", "DFR_L2_GRID"]

#: L2 strengths (standardised features, mean loss) the refit chooses from by cross-validation in the cells
DFR_L2_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
#: defaults: subsets averaged, L2 grid, erasure on, cap per cell when refitting on training images, holdout
DFR_DEFAULTS = {"n_subsets": 10, "l2": DFR_L2_GRID, "erase": True, "max_per_cell": 1024, "holdout": 0.5}


def balanced_cells(labels: np.ndarray, groups: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Row indices of each label x confounder cell (rows with an unknown group, ``< 0``, left out)."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    known = groups >= 0
    return {(int(y), int(g)): np.flatnonzero(known & (labels == y) & (groups == g))
            for y, g in sorted({(int(a), int(b)) for a, b in zip(labels[known], groups[known])})}


def select_refit_rows(labels: np.ndarray, groups: np.ndarray, max_per_cell: int = 1024, seed: int = 0
                      ) -> np.ndarray:
    """Rows whose features a refit needs: every cell, capped at ``max_per_cell`` images (seeded), sorted.

    The smallest cell decides the balanced subset size, so a cap well above it loses nothing and bounds the
    cost of extracting features from a large training set.
    """
    rng = np.random.default_rng(seed)
    out = [rows if len(rows) <= max_per_cell else rng.choice(rows, size=max_per_cell, replace=False)
           for rows in balanced_cells(labels, groups).values()]
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def select_holdout(labels: np.ndarray, groups: np.ndarray, fraction: float = 0.5, majority_ratio: int = 4,
                   seed: int = 0) -> np.ndarray:
    """Positions to hold out of training for the refit: ``fraction`` of the smallest cell from every cell, and up
    to ``majority_ratio`` times that from the larger ones (seeded, sorted).

    Features of images the network never trained on show the confounder's effect as it is on new images;
    those of memorised training images understate it, most in the small cells the network had to fit
    against the shortcut. Empty when there are fewer than two cells or the smallest has fewer than 4 images.
    """
    cells = balanced_cells(labels, groups)
    if len(cells) < 2 or min(len(r) for r in cells.values()) < 4 or fraction <= 0:
        return np.zeros(0, dtype=np.int64)
    k = max(2, int(round(fraction * min(len(r) for r in cells.values()))))
    rng = np.random.default_rng(seed)
    sizes = [min(k * max(1, int(majority_ratio)), max(k, int(fraction * len(rows)))) for rows in cells.values()]
    out = [rng.choice(rows, size=size, replace=False) for rows, size in zip(cells.values(), sizes)]
    return np.sort(np.concatenate(out)).astype(np.int64)


def confounder_subspace(features: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor,
                        tol: float = 1e-6) -> torch.Tensor:
    """Orthonormal basis ``(d, r)`` spanning the cross-covariance of features and confounder codes in each label.

    Within every label, features and one-hot confounder codes are centred and ``X_y^T Z_y / n_y`` (``d x k``)
    is computed; the matrices of all labels are put side by side and decomposed, and the directions with
    singular value above ``tol`` times the largest form the basis (``r <= (k - 1)`` per label). Taking each
    label on its own matters: the confounder may push the features one way in negatives and another way in
    positives, which a pooled covariance would average away. Empty ``(d, 0)`` when the confounder does not
    vary within any label.
    """
    x = features.double()
    n_groups = int(groups.max().item()) + 1 if groups.numel() else 0
    if n_groups < 2:
        return x.new_zeros((x.shape[1], 0))
    z = F.one_hot(groups.long(), n_groups).double()
    blocks = []
    for y in torch.unique(labels):
        m = labels == y
        if int(m.sum()) < 2:
            continue
        xc = x[m] - x[m].mean(0, keepdim=True)
        zc = z[m] - z[m].mean(0, keepdim=True)
        blocks.append(xc.T @ zc / int(m.sum()))
    if not blocks:
        return x.new_zeros((x.shape[1], 0))
    u, s, _ = torch.linalg.svd(torch.cat(blocks, dim=1), full_matrices=False)
    if s.numel() == 0 or float(s[0]) <= 0:
        return x.new_zeros((x.shape[1], 0))
    return u[:, s > tol * s[0]]


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, max_iter: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression, mean cross-entropy + ``l2 * ||W||^2`` (bias free), by L-BFGS."""
    w = torch.zeros((num_classes, x.shape[1]), dtype=x.dtype, requires_grad=True)
    b = torch.zeros(num_classes, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def _fit_cells(xs: torch.Tensor, y: torch.Tensor, g: torch.Tensor, num_classes: int, l2: float, n_subsets: int,
               erase: bool, rng: np.random.Generator, max_iter: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Erase (optionally), then fit and average over balanced subsets; weights act on ``xs``."""
    d = xs.shape[1]
    proj = torch.eye(d, dtype=xs.dtype)
    if erase:
        basis = confounder_subspace(xs, y, g)
        proj = proj - basis @ basis.T
    xp = xs @ proj  # symmetric projection
    cells = balanced_cells(y.numpy(), g.numpy())
    m = min(len(r) for r in cells.values())
    w_sum = torch.zeros((num_classes, d), dtype=xs.dtype)
    b_sum = torch.zeros(num_classes, dtype=xs.dtype)
    n = max(1, int(n_subsets))
    for _ in range(n):
        idx = torch.as_tensor(np.concatenate([rng.choice(rows, size=m, replace=False) for rows in cells.values()]))
        w, b = _fit_logistic(xp[idx], y[idx], num_classes, l2, max_iter)
        w_sum += w
        b_sum += b
    return (w_sum / n) @ proj, b_sum / n


def _cell_scores(xs: torch.Tensor, y: torch.Tensor, g: torch.Tensor, w: torch.Tensor, b: torch.Tensor
                 ) -> tuple[float, float]:
    """(worst cell's accuracy, mean over cells of the cross-entropy) of the head ``w, b`` on ``xs``."""
    logits = xs @ w.T + b
    right = (logits.argmax(1) == y).double()
    losses = F.cross_entropy(logits, y, reduction="none")
    rows = [torch.as_tensor(r) for r in balanced_cells(y.numpy(), g.numpy()).values()]
    return min(float(right[r].mean()) for r in rows), sum(float(losses[r].mean()) for r in rows) / len(rows)


def choose_l2(xs: torch.Tensor, y: torch.Tensor, g: torch.Tensor, num_classes: int, grid: Sequence[float], *,
              n_subsets: int = 3, erase: bool = True, seed: int = 0, max_iter: int = 200) -> float:
    """The L2 strength of ``grid`` with the best worst-cell accuracy under 2-fold cross-validation.

    Every label x confounder cell is split in two halves (seeded); each half is fitted (erasure included,
    ``n_subsets`` balanced draws) and scored on the other. The criterion is the worst cell's accuracy, as in
    DFR, averaged over the two folds; ties go to the lower mean cross-entropy over cells, then to the
    stronger penalty. A single value is returned as it is; cells too small to split (under 4 images) get the
    grid's middle value.
    """
    grid = sorted({float(v) for v in grid}, reverse=True)
    cells = balanced_cells(y.numpy(), g.numpy())
    if len(grid) == 1 or min(len(r) for r in cells.values()) < 4:
        return grid[len(grid) // 2]
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), dtype=bool)
    for rows in cells.values():
        fold[rng.permutation(rows)[: len(rows) // 2]] = True
    halves = [torch.as_tensor(np.flatnonzero(fold)), torch.as_tensor(np.flatnonzero(~fold))]
    scored = []
    for l2 in grid:
        worst = loss = 0.0
        for tr, te in ((halves[0], halves[1]), (halves[1], halves[0])):
            w, bias = _fit_cells(xs[tr], y[tr], g[tr], num_classes, l2, n_subsets, erase,
                                 np.random.default_rng(seed), max_iter)
            acc, ce = _cell_scores(xs[te], y[te], g[te], w, bias)
            worst, loss = worst + acc / 2, loss + ce / 2
        scored.append((-round(worst, 9), round(loss, 9), -l2))
    return -min(scored)[2]


def fit_balanced_head(features: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, num_classes: int, *,
                      n_subsets: int = 10, l2: float | Sequence[float] = DFR_L2_GRID, erase: bool = True,
                      seed: int = 0, max_iter: int = 200, return_l2: bool = False
                      ) -> tuple[torch.Tensor, ...]:
    """Fit a linear head on group-balanced subsets of ``features`` and average it over ``n_subsets`` draws.

    Args:
        features: ``(N, d)`` penultimate features.
        labels: ``(N,)`` class indices.
        groups: ``(N,)`` confounder codes; rows with ``-1`` (unknown) are left out.
        num_classes: number of logits.
        n_subsets: balanced subsets drawn (each: every label x confounder cell subsampled, without
            replacement, to the size of the smallest cell).
        l2: L2 penalty on the weights of the standardised features, or a grid to choose it from by
            cross-validation within the cells (:func:`choose_l2`).
        erase: project out the confounder's per-label cross-covariance subspace first (see module doc).
        seed: seeds the subset draws and the folds.
        max_iter: L-BFGS iterations per subset.
        return_l2: also return the L2 strength used.

    Returns:
        ``(weight (num_classes, d), bias (num_classes,))`` acting on the raw features (standardisation and
        projection folded in), float32; ``(weight, bias, l2)`` with ``return_l2``.

    Raises:
        ValueError: fewer than two label x confounder cells, or a cell with fewer than 2 images.
    """
    x_all = features.detach().double().cpu()
    y_all = labels.detach().long().cpu()
    g_all = groups.detach().long().cpu()
    known = g_all >= 0
    x_all, y_all, g_all = x_all[known], y_all[known], g_all[known]
    cells = balanced_cells(y_all.numpy(), g_all.numpy())
    if len(cells) < 2 or min(len(r) for r in cells.values()) < 2:
        raise ValueError(f"a balanced refit needs at least two label x confounder cells of 2+ images; cells: "
                         f"{ {k: len(v) for k, v in cells.items()} }")
    mean = x_all.mean(0)
    std = x_all.std(0).clamp_min(1e-6)
    xs = (x_all - mean) / std
    grid = [float(l2)] if isinstance(l2, (int, float)) else [float(v) for v in l2]
    chosen = choose_l2(xs, y_all, g_all, num_classes, grid, erase=erase, seed=seed, max_iter=max_iter)
    w, b = _fit_cells(xs, y_all, g_all, num_classes, chosen, n_subsets, erase, np.random.default_rng(seed),
                      max_iter)
    w_raw = w / std  # logits = W P (x - mu) / sd + b
    b_raw = b - w_raw @ mean
    if return_l2:
        return w_raw.float(), b_raw.float(), chosen
    return w_raw.float(), b_raw.float()


class DFRHead(nn.Module):
    """A linear head that stands in for the trained one once fitted (``fitted`` is saved with the weights).

    Call :meth:`fit` with features, labels and confounder codes; until then :attr:`is_fitted` is False and the
    model uses its trained head.
    """

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(int(feature_dim), int(num_classes))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.register_buffer("l2", torch.full((), float("nan")))  # the L2 strength the last refit chose

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted.item())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)

    @torch.no_grad()
    def load(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.linear.weight.copy_(weight.to(self.linear.weight))
        self.linear.bias.copy_(bias.to(self.linear.bias))
        self.fitted.fill_(True)

    def fit(self, features: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor,
            **options: object) -> None:
        """Refit on group-balanced subsets (:func:`fit_balanced_head`) and switch to the refitted weights."""
        num_classes = self.linear.out_features
        weight, bias, l2 = fit_balanced_head(features, labels, groups, num_classes, return_l2=True,
                                             **options)  # type: ignore[arg-type]
        self.load(weight, bias)
        self.l2.fill_(float(l2))


def collect_features(feature_fn, batches: Iterable[dict[str, torch.Tensor]], device: torch.device | str = "cpu"
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features, labels and groups for every batch (``feature_fn(images) -> (N, d)``), on the CPU; uint8 images
    (the image loader's batches) are normalised on ``device`` first (:func:`normalise_images`)."""
    feats, labels, groups = [], [], []
    with torch.no_grad():
        for batch in batches:
            feats.append(feature_fn(normalise_images(batch["image"].to(device))).detach().float().cpu())
            labels.append(batch["label"].cpu())
            group = batch.get("group")
            groups.append(group.cpu() if group is not None else torch.full_like(batch["label"], -1).cpu())
    if not feats:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.cat(feats), torch.cat(labels), torch.cat(groups)
