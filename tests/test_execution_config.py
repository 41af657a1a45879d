"""Execution configuration and the SLURM batch script, without a cluster: precedence of the config file, the
environment, the session and the flags; the job's resources; clear errors for bad values and an unreachable
scheduler; the local backend's record-free sequential path and its round slots."""

from __future__ import annotations

import argparse

import pytest

from clinagent_lab.commands.cluster import add_backend_args, execution_options
from clinagent_lab.errors import ClinagentError
from clinagent_lab.execution import (ExecutionConfig, JobRecord, LocalBackend, NotebookJob, SlurmBackend,
                                     SlurmOptions, make_backend, resolve_config)
from clinagent_lab.execution.slurm import SlurmError, _run, job_time_limit


def test_precedence_file_then_environment_then_session_then_flags(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[execution]\nbackend = "slurm"\nparallel = 3\n[execution.slurm]\npartition = "gpu"\n'
                   'account = "rad"\n')
    assert resolve_config(env={"CLINAGENT_CONFIG": str(cfg)}).model_dump()["slurm"]["account"] == "rad"
    env = {"CLINAGENT_CONFIG": str(cfg), "CLINAGENT_BACKEND": "local"}
    assert resolve_config(env=env).backend == "local"
    recorded = {"backend": "slurm", "slurm": {"partition": "long"}}
    both = resolve_config(recorded=recorded, env=env)
    assert (both.backend, both.slurm.partition, both.slurm.account, both.parallel) == ("slurm", "long", "rad", 3)
    flags = resolve_config({"backend": None, "parallel": 2, "slurm": {"partition": "short"}}, recorded=recorded,
                           env=env)
    assert (flags.backend, flags.parallel, flags.slurm.partition) == ("slurm", 2, "short")
    assert resolve_config(env={}, config_file=None) == ExecutionConfig()


def test_bad_values_are_clear_errors(tmp_path):
    with pytest.raises(ClinagentError, match="backend is one of local, slurm"):
        resolve_config({"backend": "kubernetes"}, env={}, config_file=None)
    with pytest.raises(ClinagentError, match="CLINAGENT_BACKEND"):
        resolve_config(env={"CLINAGENT_BACKEND": "pbs"}, config_file=None)
    bad = tmp_path / "c.toml"
    bad.write_text("[execution\n")
    with pytest.raises(ClinagentError, match="not valid TOML"):
        resolve_config(env={}, config_file=bad)
    with pytest.raises(ClinagentError, match="parallel"):
        resolve_config({"parallel": 0}, env={}, config_file=None)


def test_cli_flags_become_the_configuration():
    parser = argparse.ArgumentParser()
    add_backend_args(parser)
    args = parser.parse_args(["--backend", "slurm", "--parallel", "2", "--partition", "gpu", "--gpus-per-job", "2",
                              "--mem", "32G", "--sbatch=--constraint=a100", "--time-margin", "60"])
    cfg = resolve_config(execution_options(args), env={}, config_file=None)
    assert cfg.backend == "slurm" and cfg.parallel == 2
    assert cfg.slurm.model_dump(exclude={"python"}) == {
        "partition": "gpu", "account": None, "qos": None, "cpus_per_job": 4, "gpus_per_job": 2, "mem": "32G",
        "time_margin_s": 60.0, "sbatch": ["--constraint=a100"]}
    assert isinstance(make_backend(cfg), SlurmBackend)
    assert isinstance(make_backend(resolve_config(env={}, config_file=None)), LocalBackend)


def _record(tmp_path, timeout_s=600.0) -> JobRecord:
    job = NotebookJob(input=str(tmp_path / "in.ipynb"), output=str(tmp_path / "iter_01" / "iteration.ipynb"),
                      cwd=str(tmp_path / "iter_01"), events_path=str(tmp_path / "iter_01" / "events.jsonl"),
                      timeout_s=timeout_s)
    return JobRecord(backend="slurm", token="abc123", job=job)


def test_batch_script_carries_the_resources(tmp_path):
    options = SlurmOptions(partition="gpu", account="rad", gpus_per_job=2, cpus_per_job=8, mem="32G",
                           time_margin_s=300, sbatch=["--constraint=a100", "#SBATCH --exclusive"])
    script = SlurmBackend(options).script(_record(tmp_path, timeout_s=1500))
    for line in ("#SBATCH --job-name=clinagent-abc123", "#SBATCH --time=30", "#SBATCH --partition=gpu",
                 "#SBATCH --account=rad", "#SBATCH --mem=32G", "#SBATCH --gpus-per-node=2",
                 "#SBATCH --ntasks-per-node=2", "#SBATCH --cpus-per-task=4", "#SBATCH --constraint=a100",
                 "#SBATCH --exclusive", "export OMP_NUM_THREADS=4 MKL_NUM_THREADS=4"):
        assert line in script.splitlines(), line
    assert "srun " in script and "-m clinagent_lab.execution.job" in script  # one task per GPU: DDP
    single = SlurmBackend(SlurmOptions(cpus_per_job=1)).script(_record(tmp_path))
    assert "srun" not in single and "#SBATCH --gpus-per-node" not in single and "exec " in single


@pytest.mark.parametrize(("timeout_s", "margin_s", "minutes"), [(1, 0, "1"), (60, 0, "1"), (61, 0, "2"),
                                                                 (600, 300, "15")])
def test_time_limit_in_whole_minutes(timeout_s, margin_s, minutes):
    assert job_time_limit(timeout_s, margin_s) == minutes


def test_missing_scheduler_commands_are_a_clear_error():
    with pytest.raises(SlurmError, match="could not run") as info:
        _run(["sbatch-that-does-not-exist", "--parsable"])
    assert "sinfo" in info.value.fix


def test_local_backend_has_nothing_to_reattach(tmp_path):
    backend = LocalBackend(max_parallel=2)
    assert backend.reattach(tmp_path) is None and backend.max_parallel == 2 and not backend.running
    assert backend.stop() is False
