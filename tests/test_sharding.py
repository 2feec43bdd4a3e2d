"""Many devices: training split over 8 virtual CPU devices computes what it computes on 1 (gancli.parallel).

The 8-device runs happen in one subprocess (tests/multidevice_run.py): XLA's device count is fixed when JAX
starts, and the flag that makes 8 CPU devices must not reach this process. Tolerance: 1e-5 absolute on every leaf
of the state (parameters, optimiser momenta, batch-norm statistics, EMA), where on 8 devices only the order of
the sums over a batch differs (measured: 4e-9 for the paper model, 5e-7 with batch norm), while each run moves
its state from the initial one by 1e-3 (the paper model's D, 8 iterations) to 1 (batch-norm statistics).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import parallel

TOLERANCE = 1e-5
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("multidevice")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, str(HERE / "multidevice_run.py"), str(out)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_subprocess_has_eight_devices(runs):
    assert runs["devices"] == 8


def test_paper_model_on_8_devices_trains_as_on_1(runs):
    assert runs["paper_moved"] > 50 * TOLERANCE  # it trained: D moved away from its initial weights (by ~1e-3)
    assert runs["paper_1_vs_8"] < TOLERANCE
    # the batch really was split: jit summed the gradients and batch means over the devices
    assert "all-reduce" in runs["paper_collectives"]


def test_batch_norm_statistics_are_over_the_global_batch(runs):
    # 2 examples per device: statistics per device would differ from the global batch's by far more than this
    assert runs["bn_stats_moved"] > 0.1
    assert runs["bn_1_vs_8"] < TOLERANCE


def test_a_data_set_split_over_the_devices_gives_the_same_batches(runs):
    assert runs["bn_sharded_data_mesh"]["data"] == "sharded"
    assert runs["bn_1_vs_8_sharded_data"] < TOLERANCE


def test_seeds_split_over_8_devices_equal_8_single_seed_runs(runs):
    assert len(runs["seeds_vs_single"]) == 8
    assert max(runs["seeds_vs_single"]) < TOLERANCE
    assert runs["seeds_mesh"]["split"] == "seeds"
    assert "all-reduce" not in runs["seeds_collectives"]  # seeds never talk to each other


def test_resume_on_another_device_count(runs):
    assert runs["resume_8_then_1"] < TOLERANCE
    assert runs["resume_1_then_8"] < TOLERANCE
    assert runs["resume_1_then_8_mesh"]["devices"] == 8


def test_checkpoint_and_inspect_record_the_mesh(runs):
    mesh = {"devices": 8, "platform": "cpu", "device_kind": "cpu", "processes": 1, "hosts": 1, "split": "batch", "data": "replicated"}
    assert runs["paper_mesh"] == mesh
    assert runs["paper_inspect_mesh"] == mesh
    assert parallel.words(mesh).startswith("8 cpu devices (cpu), 1 process on 1 host; each batch split over them")


def test_work_that_does_not_divide_over_the_devices_is_refused(runs):
    errors = runs["errors"]
    assert errors["batch"] == "the batch size (10) must be divisible by the device count (8): choose --devices among 1, 2, 5"
    assert errors["seeds"] == "--seeds (3) must be divisible by the device count (8): choose --devices among 1, 3"
    assert errors["too_many"] == "--devices 9: this machine has 8 cpu device(s)"
    assert errors["train_batch"] == errors["batch"]
    assert runs["default_devices_batch_10"] == 5  # without --devices: the most devices that divide the batch


def test_one_device_has_no_placement():
    from gancli.config import preset

    assert parallel.plan(preset("paper", "mnist"), None, 0) is None
    assert parallel.describe(None)["devices"] == 1


def test_train_command_refuses_more_devices_than_there_are(tmp_path, monkeypatch):
    from gancli import data
    from gancli.cli import app

    monkeypatch.setattr(data, "load", lambda name, split, data_dir=None: (np.zeros((200, 4, 4, 1), np.float32), np.zeros(200, np.int64)))
    monkeypatch.setattr(data, "provenance", lambda name, data_dir=None: {"dataset": name})
    result = CliRunner().invoke(app, ["train", "tiny", "--preset", "toy", "--devices", "2", "--ckpt", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "error: --devices 2: this machine has 1 cpu device(s)" in result.output


@pytest.mark.parametrize("env, found", [
    ({}, None),
    ({"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "n[1-2]", "SLURM_NTASKS": "2", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}, "SLURM"),
    ({"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "n1", "SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}, None),
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "2"}, None),  # sbatch's script itself, not an srun task
    ({"OMPI_MCA_orte_hnp_uri": "1.0;tcp://10.0.0.1:4000", "OMPI_COMM_WORLD_SIZE": "4"}, "Open MPI"),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "2"}, "JAX_COORDINATOR_ADDRESS"),
])
def test_multi_process_launchers_are_recognised(monkeypatch, env, found):
    for name in list(os.environ):
        if name.startswith(("SLURM_", "OMPI_", "JAX_COORDINATOR", "JAX_NUM_PROCESSES")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert parallel.distributed_environment() == found
