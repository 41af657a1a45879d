import math

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader, Dataset

from clinagent_lab.models.classifier import ImageClassifier, auroc_score, build_optimizer, build_scheduler
from clinagent_lab.models.losses import GroupDROLoss
from clinagent_lab.recipe import Recipe, apply_patch

SIZE = 16


class DictDataset(Dataset):
    def __init__(self, n=16, num_classes=2, n_groups=2, channels=1, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, channels, SIZE, SIZE, generator=g)
        self.labels = torch.arange(n) % num_classes
        self.groups = torch.randint(-1, n_groups, (n,), generator=g) if n_groups else torch.full((n,), -1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i], "index": torch.tensor(i),
                "group": self.groups[i]}


def make_recipe(num_classes=2, **changes):
    base = Recipe(task_type="binary_classification" if num_classes == 2 else "multiclass_classification",
                  classes=[f"c{i}" for i in range(num_classes)])
    defaults = {"model.architecture": "small_cnn", "model.width": 0.25, "model.in_channels": 1,
                "data.image_size": SIZE, "data.batch_size": 4}
    return apply_patch(base, {**defaults, **changes})


def loaders(num_classes=2, n_groups=2):
    train = DataLoader(DictDataset(16, num_classes, n_groups, seed=0), batch_size=4, shuffle=True)
    val = DataLoader(DictDataset(8, num_classes, n_groups, seed=1), batch_size=8)
    return train, val


def fit(model, num_classes=2, n_groups=2):
    trainer = L.Trainer(fast_dev_run=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    train, val = loaders(num_classes, n_groups)
    before = [p.detach().clone() for p in model.backbone.parameters()]
    trainer.fit(model, train, val)
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.backbone.parameters()))
    return trainer, changed


@pytest.mark.parametrize("changes", [
    {"loss.name": "ce", "loss.label_smoothing": 0.1},
    {"loss.name": "weighted_ce", "optim.name": "sgd", "optim.schedule": "cosine"},
    {"loss.name": "focal", "optim.name": "adam", "optim.schedule": "none"},
    {"loss.name": "groupdro", "debias.method": "groupdro", "debias.groupdro_eta": 0.5},
])
def test_trains_with_each_loss(changes):
    torch.manual_seed(0)
    model = ImageClassifier(make_recipe(**changes), class_weights=[1.0, 3.0], n_groups=2)
    trainer, changed = fit(model)
    assert changed
    metrics = trainer.callback_metrics
    assert math.isfinite(float(metrics["train_loss"]))
    assert math.isfinite(float(metrics["val_loss"]))
    _, val = loaders()
    batch = next(iter(val))
    model.eval()
    with torch.no_grad():
        probs = model(batch["image"]).softmax(1)
        ref_loss = F.cross_entropy(model(batch["image"]), batch["label"])
    ref_auroc = roc_auc_score(batch["label"].numpy(), probs[:, 1].numpy())
    assert float(metrics["val_auroc"]) == pytest.approx(ref_auroc, abs=1e-6)
    assert float(metrics["val_loss"]) == pytest.approx(float(ref_loss), abs=1e-5)
    if changes["loss.name"] == "groupdro":
        q = model.loss_fn.q
        assert isinstance(model.loss_fn, GroupDROLoss) and q.numel() == 2 * 3
        assert not torch.allclose(q, torch.full_like(q, 1 / 6))  # q was updated during training
        torch.testing.assert_close(q.sum(), torch.tensor(1.0))


def test_multiclass_trains_and_logs_macro_auroc():
    torch.manual_seed(0)
    model = ImageClassifier(make_recipe(num_classes=3), n_groups=0)
    trainer, changed = fit(model, num_classes=3, n_groups=0)
    assert changed and 0.0 <= float(trainer.callback_metrics["val_auroc"]) <= 1.0
    assert "val_worst_group_auroc" not in trainer.callback_metrics


def test_group_balanced_validation_auroc_is_the_evaluators():
    # the metric that picks the checkpoint when a confounder is mitigated: each label x group cell (the unknown
    # group, -1, is a cell of its own, as in the evaluator) weighs the same
    torch.manual_seed(0)
    model = ImageClassifier(make_recipe(), n_groups=2)
    trainer, _ = fit(model)
    _, val = loaders()
    batch = next(iter(val))
    model.eval()
    with torch.no_grad():
        probs = model(batch["image"]).softmax(1)[:, 1].numpy()
    y, g = batch["label"].numpy(), batch["group"].numpy()
    cells = [f"{a}|{b}" for a, b in zip(y, g)]
    weights = np.array([1.0 / cells.count(c) for c in cells])
    expected = roc_auc_score(y, probs, sample_weight=weights)
    assert float(trainer.callback_metrics["val_group_balanced_auroc"]) == pytest.approx(expected, abs=1e-6)
    assert len(set(weights)) > 1  # the cells differ in size: the weighting matters


def test_gradient_reversal_trains_and_logs():
    torch.manual_seed(0)
    recipe = make_recipe(**{"debias.method": "gradient_reversal", "debias.column": "site"})
    model = ImageClassifier(recipe, n_groups=2)
    assert model.adversary is not None
    adv_before = [p.detach().clone() for p in model.adversary.parameters()]
    trainer, changed = fit(model)
    assert changed
    assert any(not torch.equal(a, b) for a, b in zip(adv_before, model.adversary.parameters()))
    m = trainer.callback_metrics
    assert {"adv_loss", "grl_lambda", "train_loss", "val_worst_group_auroc"} <= set(m)
    assert 0.0 <= float(m["grl_lambda"]) < 1.0


def test_no_adversary_without_groups():
    recipe = make_recipe(**{"debias.method": "gradient_reversal", "debias.column": "site"})
    assert ImageClassifier(recipe, n_groups=0).adversary is None
    assert ImageClassifier(make_recipe(), n_groups=3).adversary is None


def test_rejects_bad_recipes():
    from clinagent_lab.errors import RecipeError

    with pytest.raises(RecipeError, match="positive class index 2"):
        ImageClassifier(make_recipe(**{"evaluation.positive_class": 2}))
    with pytest.raises(RecipeError, match="detection"):
        ImageClassifier(make_recipe(**{"task_type": "detection"}))


def test_positive_class_default_and_override():
    model = ImageClassifier(make_recipe(**{"evaluation.positive_class": 0}))
    assert model.positive_class == 0
    assert ImageClassifier(make_recipe()).positive_class == 1


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return ([p.grad.clone() for p in model.backbone.trunk.parameters() if p.grad is not None],
            [p.grad.clone() for p in model.adversary.parameters()])


def test_adversary_gradient_is_reversed_for_the_feature_extractor():
    torch.manual_seed(0)
    recipe = make_recipe(**{"debias.method": "gradient_reversal", "debias.column": "site"})
    model = ImageClassifier(recipe, n_groups=2).eval()  # eval: deterministic BatchNorm
    x = torch.randn(6, 1, SIZE, SIZE)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    groups = torch.tensor([0, 1, 1, -1, 0, 1])
    with_grl = _grads(model, model.adversary_loss(model.backbone.forward_features(x), labels, groups, 0.5))
    known = groups >= 0
    feats = model.backbone.forward_features(x)[known]
    plain_in = torch.cat([feats, F.one_hot(labels[known], 2).float()], dim=1)
    plain = _grads(model, F.cross_entropy(model.adversary(plain_in), groups[known]))
    assert len(with_grl[0]) == len(plain[0]) > 0
    for g_rev, g_plain in zip(with_grl[0], plain[0]):
        torch.testing.assert_close(g_rev, -0.5 * g_plain)
    assert any(g.abs().sum() > 0 for g in plain[0])
    for g_rev, g_plain in zip(with_grl[1], plain[1]):  # the adversary itself is trained normally
        torch.testing.assert_close(g_rev, g_plain)


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path):
    torch.manual_seed(0)
    recipe = make_recipe(**{"loss.name": "groupdro", "debias.method": "groupdro", "model.dropout": 0.2})
    model = ImageClassifier(recipe.model_dump(), class_weights=[1.0, 2.0], n_groups=2)
    trainer, _ = fit(model)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = ImageClassifier.load_from_checkpoint(path)
    assert loaded.recipe == recipe and loaded.n_groups == 2
    assert loaded.hparams["class_weights"] == [1.0, 2.0]
    torch.testing.assert_close(loaded.loss_fn.q, model.loss_fn.q)
    _, val = loaders()
    predictor = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    a = predictor.predict(model, val)
    b = predictor.predict(loaded, val)
    assert set(a[0]) == {"index", "probs"}
    assert a[0]["index"].tolist() == list(range(8))
    torch.testing.assert_close(a[0]["probs"].sum(1), torch.ones(8))
    torch.testing.assert_close(a[0]["probs"], b[0]["probs"])


def test_auroc_score_matches_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40)
    probs = torch.softmax(torch.tensor(rng.normal(size=(40, 3)), dtype=torch.float32), 1)
    ref = roc_auc_score(labels, probs.numpy(), multi_class="ovr", average="macro")
    assert auroc_score(probs, torch.tensor(labels)) == pytest.approx(ref, abs=1e-6)
    y2 = rng.integers(0, 2, 40)
    p2 = torch.softmax(torch.tensor(rng.normal(size=(40, 2)), dtype=torch.float32), 1)
    ref2 = roc_auc_score(y2, p2[:, 1].numpy())
    assert auroc_score(p2, torch.tensor(y2), 1) == pytest.approx(ref2, abs=1e-6)
    assert auroc_score(p2, torch.tensor(y2), 0) == pytest.approx(roc_auc_score(1 - y2, p2[:, 0].numpy()),
                                                                  abs=1e-6)
    assert math.isnan(auroc_score(p2[:5], torch.zeros(5, dtype=torch.long)))  # one class: undefined


@pytest.mark.parametrize("name,schedule,cls", [
    ("adamw", "onecycle", torch.optim.lr_scheduler.OneCycleLR),
    ("sgd", "cosine", torch.optim.lr_scheduler.CosineAnnealingLR),
    ("adam", "none", type(None)),
])
def test_optimizer_and_schedule(name, schedule, cls):
    recipe = make_recipe(**{"optim.name": name, "optim.schedule": schedule, "optim.lr": 0.05})
    params = [torch.nn.Parameter(torch.zeros(2))]
    opt = build_optimizer(params, recipe)
    assert type(opt).__name__.lower() == name
    sched = build_scheduler(opt, recipe, 10)
    assert isinstance(sched, cls)
    if sched is not None:
        for _ in range(10):
            opt.step()
            sched.step()  # exactly total_steps steps must not raise
    assert build_scheduler(opt, recipe, float("inf")) is None
