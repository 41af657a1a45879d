"""The kept checkpoint: best monitored value, ties broken by validation loss (else the later epoch)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from clinagent_lab.notebooks.checkpoint import BestCheckpoint


class Tiny(L.LightningModule):
    """Logs ``val_auroc`` from a fixed script per epoch, and (optionally) its real validation loss."""

    def __init__(self, aurocs: list[float], log_loss: bool = True) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.aurocs, self.log_loss = aurocs, log_loss
        self.losses: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.binary_cross_entropy_with_logits(self.layer(x).squeeze(1), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.binary_cross_entropy_with_logits(self.layer(x).squeeze(1), y)
        if self.log_loss:
            self.log("val_loss", loss)
        self.log("val_auroc", self.aurocs[self.current_epoch])

    def on_validation_epoch_end(self):
        if self.log_loss:
            self.losses.append(float(self.trainer.callback_metrics["val_loss"]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def _fit(tmp_path, aurocs: list[float], log_loss: bool = True) -> tuple[int, BestCheckpoint, list[float]]:
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).float()
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    callback = BestCheckpoint(dirpath=str(tmp_path), filename="model", monitor="val_auroc",
                              enable_version_counter=False)
    trainer = L.Trainer(max_epochs=len(aurocs), callbacks=[callback], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=0)
    module = Tiny(aurocs, log_loss)
    trainer.fit(module, loader, loader)
    assert trainer.checkpoint_callback is callback  # the runtime loads the best weights through this
    epoch = torch.load(callback.best_model_path, weights_only=False)["epoch"]
    return epoch, callback, module.losses


def test_a_saturated_metric_keeps_the_epoch_with_the_lowest_validation_loss(tmp_path):
    epoch, callback, losses = _fit(tmp_path, [1.0, 1.0, 1.0, 1.0])  # the loss falls on separable data
    assert losses[3] < losses[0] and callback.tie_breaker == "val_loss"
    assert epoch == losses.index(min(losses)) and callback.kept_tie_value == pytest.approx(min(losses))


def test_a_strictly_better_value_still_wins_over_a_lower_loss(tmp_path):
    epoch, callback, _ = _fit(tmp_path, [0.7, 0.9, 0.8, 0.85])
    assert epoch == 1 and float(callback.best_model_score) == pytest.approx(0.9)


def test_with_no_tie_breaker_logged_the_later_epoch_wins_a_tie(tmp_path):
    epoch, callback, _ = _fit(tmp_path, [0.0, 0.0, 0.0], log_loss=False)  # a detector's mAP still 0
    assert epoch == 2 and callback.tie_breaker is None
