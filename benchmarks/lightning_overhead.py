"""Lightning training loop versus a plain PyTorch loop: same model, data, optimiser, epochs. Prints the ratio.

Usage:
    python benchmarks/lightning_overhead.py [DATA] [--epochs 3] [--image-size 28]

DATA defaults to a synthetic chest-radiograph-like set written to a temporary folder; pass
``../shared/data/pneumoniamnist.npz`` for the real one. Both loops use the same ImageDataModule loaders and the
same ImageClassifier (its training_step), so the difference is Lightning's own overhead. Target: <= 1.10.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def build(data: Path, image_size: int, epochs: int):
    from clinagent_lab.agent.engine import prepare_data
    from clinagent_lab.intent import parse_offline
    from clinagent_lab.plan.initializer import initialize_recipe
    from clinagent_lab.recipe import apply_patch
    from clinagent_lab.tasks.classification import make_datamodule, make_module

    dataset, fp = prepare_data(data)
    spec = parse_offline("pneumonia on paediatric chest x-rays", fp)
    recipe = apply_patch(initialize_recipe(spec, fp), {"training.max_epochs": epochs, "data.image_size": image_size,
                                                       "training.deterministic": False})
    dm = make_datamodule(dataset, recipe, spec)
    dm.setup("fit")
    return recipe, spec, dataset, dm, make_module


def time_lightning(recipe, spec, dataset, dm, make_module, epochs: int) -> float:
    import lightning as L

    L.seed_everything(0, verbose=False)
    module = make_module(recipe, dataset, spec, datamodule=dm)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0)
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=dm.train_dataloader())
    return time.perf_counter() - start


def time_plain(recipe, spec, dataset, dm, make_module, epochs: int) -> float:
    import lightning as L
    import torch

    L.seed_everything(0, verbose=False)
    module = make_module(recipe, dataset, spec, datamodule=dm)
    loader = dm.train_dataloader()
    optimizer = torch.optim.AdamW(module.parameters(), lr=recipe.optim.lr, weight_decay=recipe.optim.weight_decay)
    steps = epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.optim.lr, total_steps=steps)
    module.train()
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            batch = module.on_after_batch_transfer(batch, 0)  # uint8 pixels normalised, as Lightning does
            features = module.backbone.forward_features(batch["image"])
            loss = module.loss_fn(module.backbone.classify(features), batch["label"], group=batch["group"])
            loss.backward()
            optimizer.step()
            scheduler.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.data:
        data = Path(args.data)
    else:
        from clinagent_lab.data.synth import generate

        data = generate("chest_drain", Path(tempfile.mkdtemp()) / "d", n=1200, image_size=args.image_size)
    parts = build(data, args.image_size, args.epochs)
    time_plain(*parts, epochs=1)  # warm-up: caches, allocator, threads
    light, plain = [], []
    for _ in range(args.repeats):  # interleaved so machine noise hits both
        plain.append(time_plain(*parts, epochs=args.epochs))
        light.append(time_lightning(*parts, epochs=args.epochs))
    import torch

    print(f"data: {data}  epochs: {args.epochs}  image size: {args.image_size}  threads: {torch.get_num_threads()}")
    print(f"plain PyTorch loop : best {min(plain):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in plain)})")
    print(f"Lightning Trainer  : best {min(light):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in light)})")
    print(f"ratio Lightning / plain (best of {args.repeats}): {min(light) / min(plain):.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
