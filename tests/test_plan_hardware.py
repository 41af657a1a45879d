"""Hardware-aware initial recipes: GPU settings, device checks, pretrained weights preferred, CPU subsampling."""

from __future__ import annotations

import pytest

from clinagent_lab.errors import RecipeError
from clinagent_lab.plan.hardware import Hardware, check_local_slots, detect_hardware, training_settings
from clinagent_lab.plan.initializer import initialize_recipe
from tests.test_plan_initializer import fingerprint, spec
from tests.test_models_weights import NAME, _put_in_hub_cache, _timm_state

H200 = Hardware(accelerator="gpu", devices=1, cores=16, gpu_name="NVIDIA H200", gpu_memory_gib=139.8, bf16=True)
T4 = Hardware(accelerator="gpu", devices=2, cores=8, gpu_name="Tesla T4", gpu_memory_gib=15.0, bf16=False)


def test_gpu_settings_are_recorded_with_reasons():
    values, reasons = training_settings(H200, "resnet18", 224)
    assert values["training.precision"] == "bf16-mixed" and values["training.channels_last"] is True
    assert values["data.pin_memory"] is True and values["data.num_workers"] == 8
    assert values["data.batch_size"] == 256 and "139.8 GiB" in reasons["data.batch_size"]
    values, reasons = training_settings(T4, "timm:vit_small_patch16_224", 224)
    assert values["training.precision"] == "16-mixed" and values["training.channels_last"] is False
    assert values["data.num_workers"] == 3 and values["training.devices"] == 2  # 8 cores over 2 GPUs
    assert values["data.batch_size"] < 256
    r = initialize_recipe(spec(), fingerprint(side=512), hardware=H200)
    assert (r.training.precision, r.training.accelerator, r.data.pin_memory) == ("bf16-mixed", "gpu", True)
    assert r.data.image_size == 224 and r.data.batch_size == 256 and r.training.channels_last
    for field in ("training.precision", "training.channels_last", "data.pin_memory", "data.num_workers",
                  "data.batch_size"):
        assert len(r.reasons[field]) > 10


def test_notebooks_run_at_once_locally_must_fit_the_cores(monkeypatch, tmp_path, capsys):
    """``[execution] local_parallel`` notebooks of ``--devices`` processes each: their product is checked."""
    from clinagent_lab.cli import main

    monkeypatch.setattr("clinagent_lab.plan.hardware.usable_cores", lambda: 4)
    assert check_local_slots(2, 2, "cpu").devices == 2  # 2 notebooks x 2 DDP processes on 4 cores
    with pytest.raises(RecipeError, match=r"local_parallel = 3 notebooks .* 2 cpu device\(s\) each needs 6 CPU "
                                          r"core\(s\); this machine has 4") as info:
        check_local_slots(3, 2, "cpu")
    assert "local_parallel" in info.value.where and info.value.fix.startswith("set local_parallel to 2 or fewer")
    config = tmp_path / "config.toml"
    config.write_text("[execution]\nlocal_parallel = 4\n")
    monkeypatch.setenv("CLINAGENT_CONFIG", str(config))
    monkeypatch.delenv("CLINAGENT_BACKEND", raising=False)
    code = main(["run", "--intent", "pneumothorax on chest X-rays", "--data", str(tmp_path / "absent"),
                 "--accelerator", "cpu", "--devices", "2", "--parallel", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "needs 8 CPU core(s); this machine has 4" in err  # refused before the data are read


def test_cpu_stays_the_tested_default():
    r = initialize_recipe(spec(), fingerprint(side=512))
    assert (r.training.precision, r.training.accelerator, r.training.devices) == ("32-true", "cpu", 1)
    assert r.data.num_workers == 0 and not r.data.pin_memory and not r.training.channels_last
    assert r.data.image_size == 64


def test_devices_are_checked_against_the_machine(monkeypatch):
    monkeypatch.setattr("clinagent_lab.plan.hardware.usable_cores", lambda: 2)
    with pytest.raises(RecipeError, match=r"--devices 4 asked, this machine has 2 CPU core\(s\) for 4 processes") \
            as info:
        detect_hardware("cpu", 4)
    assert info.value.where == "--devices" and info.value.fix == "use --devices 2 or fewer"
    hw = detect_hardware("cpu", 2)  # as many processes as cores: DDP over gloo
    assert (hw.accelerator, hw.devices, hw.cores) == ("cpu", 2, 2)
    values, reasons = training_settings(hw, "small_cnn", 32)
    assert values["training.devices"] == 2 and values["data.num_workers"] == 0
    assert "ddp_notebook" in reasons["training.devices"] and "gloo" in reasons["training.devices"]
    assert "1 thread(s) each" in reasons["training.devices"]
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(RecipeError, match="no GPU"):
            detect_hardware("gpu", 1)
        assert detect_hardware("auto", 1).accelerator == "cpu"


def test_several_processes_are_refused_for_detection_only():
    from clinagent_lab.plan.hardware import check_devices
    from clinagent_lab.recipe import Recipe
    from clinagent_lab.tasks import get_backend

    two = {"training": {"devices": 2}}
    detection = Recipe(task_type="detection", classes=["fracture"], **two)
    with pytest.raises(RecipeError, match="training.devices = 2: detection trains in one process") as info:
        check_devices(get_backend("detection"), detection)
    assert info.value.fix == "use --devices 1 for this task"
    check_devices(get_backend("detection"), Recipe(task_type="detection", classes=["fracture"]))
    for task in ("binary_classification", "multiclass_classification"):
        check_devices(get_backend(task), Recipe(task_type=task, classes=["a", "b", "c"], **two))


def test_large_data_on_cpu_trains_a_subsample_first():
    fp = fingerprint(n_train=20000, side=450)
    r = initialize_recipe(spec(budget={"iteration_minutes": 2}), fp)
    assert r.data.max_train_samples is not None and r.data.max_train_samples < 20000
    assert "subsample" in r.reasons["data.max_train_samples"]
    assert r.training.max_epochs >= 2
    small = initialize_recipe(spec(), fingerprint(n_train=500, side=64))
    assert small.data.max_train_samples is None


def test_pretrained_weights_in_the_cache_are_preferred(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    fp = fingerprint(side=256)
    scratch = initialize_recipe(spec(), fp)
    assert scratch.model.pretrained is None
    assert "weights pull" in scratch.reasons["model.pretrained"] and "from scratch" in scratch.reasons["model.pretrained"]
    monkeypatch.setattr("clinagent_lab.plan.initializer.PREFERRED_PRETRAINED", {"cpu": (NAME,), "gpu": (NAME,)})
    path = _put_in_hub_cache(tmp_path / "hub", _timm_state(0))
    r = initialize_recipe(spec(), fp)
    assert r.model.pretrained == NAME and r.model.architecture == "timm:test_resnet"
    import hashlib

    assert r.model.pretrained_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "local cache" in r.reasons["model.pretrained"] and r.data.image_size >= 96
    explicit = initialize_recipe(spec(), fp, pretrained=str(path))
    assert explicit.model.pretrained == str(path.resolve()) and explicit.model.architecture == "small_cnn"
    with pytest.raises(RecipeError, match="close|did you mean|unknown"):
        initialize_recipe(spec(), fp, pretrained="resnet18.a1_in1kk")


def test_throughput_is_measured_on_this_machine():
    from clinagent_lab.plan.hardware import measure_throughput
    from clinagent_lab.recipe import ModelConfig

    rate = measure_throughput(ModelConfig(architecture="small_cnn", in_channels=1, width=0.25), 2, 16, batch=8,
                              seconds=0.2)
    assert 1.0 < rate < 1e6
    r = initialize_recipe(spec(budget={"iteration_minutes": 2}), fingerprint(n_train=20000, side=64),
                          throughput=rate)
    assert "measured" in r.reasons["training.max_epochs"]


def test_deterministic_training_on_a_gpu_warns_where_pytorch_has_no_deterministic_kernel(monkeypatch):
    import torch

    from clinagent_lab.recipe import TrainingConfig

    assert TrainingConfig(accelerator="cpu").lightning_deterministic() is True
    assert TrainingConfig(accelerator="gpu").lightning_deterministic() == "warn"
    assert TrainingConfig(accelerator="gpu", deterministic=False).lightning_deterministic() is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert TrainingConfig(accelerator="auto").lightning_deterministic() is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert TrainingConfig(accelerator="auto").lightning_deterministic() == "warn"
    r = initialize_recipe(spec(), fingerprint(side=512), hardware=H200)  # the GPU baseline still asks for it
    assert r.training.deterministic and r.training.lightning_deterministic() == "warn"


def test_a_gpu_baseline_is_planned_at_gpu_speed_and_trains_on_the_whole_split():
    # 1,400 training images at 224 px in a 2-minute iteration: at the CPU table's ~3 images/s the GPU baseline
    # trained on a 256-image subsample for one epoch
    r = initialize_recipe(spec(), fingerprint(side=512, n_train=1400), hardware=H200, budget_s=120)
    assert r.data.max_train_samples is None and r.training.max_epochs >= 10
    assert "estimated" in r.reasons["training.max_epochs"]
    huge = initialize_recipe(spec(), fingerprint(side=512, n_train=200_000), hardware=H200, budget_s=120)
    assert huge.data.max_train_samples is not None and huge.data.max_train_samples < 200_000
