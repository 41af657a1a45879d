"""Built-in dataset format adapters; each module registers itself on import."""

from . import csv_manifest, image_folder, medmnist  # noqa: F401

try:  # seed-task formats
    from . import grazpedwri, isic2019, siim_acr  # noqa: F401
except ImportError:  # pragma: no cover - partially installed checkout
    pass
