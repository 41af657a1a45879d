"""Built-in dataset format adapters; each module registers itself on import."""

import importlib

for _name in ("csv_manifest", "image_folder", "medmnist", "isic2019", "siim_acr", "grazpedwri"):
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _exc:  # pragma: no cover - only a partially installed checkout lacks one
        if _exc.name != f"{__name__}.{_name}":
            raise
