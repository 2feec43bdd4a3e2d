"""Devices and hosts: the mesh a run trains on, where its state and data live, and multi-host start-up.

The only module that builds meshes and shardings. A run on one device in one process has no placement (None)
and trains exactly as before this module existed. On several devices the mesh is one axis, DEVICES, and
jax.jit does the rest from the shardings given here:

- seeds > 1: the seeds are split over the devices (the leading axis of every state leaf); each device trains its
  seeds with no communication at all.
- one seed: every iteration's batch is split over the devices; parameters and optimiser states are replicated,
  so jit all-reduces the gradients, and batch norm's mean and variance over the batch axis are over the global
  batch, as on one device.

The training set is replicated on every device when it fits in a quarter of a device's memory: each device then
gathers its part of a batch locally. Otherwise, and always with several processes (each places only its own
rows), it is split by rows over the devices; jit then fetches each batch's examples from the devices that hold
them (a masked gather and one all-reduce of the batch, never of the data set). Either way every iteration sees
the batch it would on one device: the epoch's permutation is over the whole set.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

from gancli.errors import GancliError
from gancli.files import available_memory, check_count

DEVICES = "devices"  # the mesh's one axis
REPLICATE_SHARE = 0.25  # a data set replicated on every device may take this much of a device's memory


def distributed_environment() -> str | None:
    """The multi-process launcher this process runs under, when jax.distributed can read its settings from it and
    it started more than one process; None otherwise (then the run stays in one process unless --distributed)."""
    env = os.environ
    if env.get("JAX_COORDINATOR_ADDRESS") and env.get("JAX_NUM_PROCESSES", "1") != "1":
        return "JAX_COORDINATOR_ADDRESS"
    # jax's SLURM detection needs srun's per-task variables; sbatch alone sets SLURM_JOB_ID for the batch script.
    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
    if all(v in env for v in slurm) and int(env["SLURM_NTASKS"]) > 1:
        return "SLURM"
    if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "Open MPI"
    return None


def start(distributed: bool = False) -> str | None:
    """jax.distributed.initialize() when asked or when the launcher says there are several processes; returns
    what started it (None: one process). Must run before anything touches a device."""
    why = "--distributed" if distributed else distributed_environment()
    if why is None:
        return None
    try:
        jax.distributed.initialize()  # coordinator, process count and id from the environment (SLURM, MPI, TPU)
    except (RuntimeError, ValueError) as e:
        raise GancliError(f"cannot start the multi-process run ({why}): {e}") from None
    return why


def is_primary() -> bool:
    """Whether this process writes the run folder's files (metrics, pictures, reports): process 0 only."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process gets here (nothing to wait for in one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


@dataclass(frozen=True)
class Placement:
    """A run's mesh and what is split over it: split "seeds" or "batch"; data "replicated" or "sharded"."""

    mesh: Mesh
    split: str
    data: str

    @property
    def devices(self) -> int:
        return self.mesh.devices.size

    @cached_property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    @cached_property
    def state(self) -> NamedSharding:
        """Every state leaf: split on its seed axis, or the same on every device."""
        return NamedSharding(self.mesh, PartitionSpec(DEVICES)) if self.split == "seeds" else self.replicated

    @cached_property
    def data_sharding(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec(DEVICES)) if self.data == "sharded" else self.replicated

    @cached_property
    def batches(self) -> NamedSharding | None:
        """An iteration's batches [k, B, ...]: split on B when the batch is what is split."""
        return NamedSharding(self.mesh, PartitionSpec(None, DEVICES)) if self.split == "batch" else None

    @cached_property
    def pick_seed(self):
        """(multi-seed state, s) -> seed s's state, replicated: one program for every s."""
        return jax.jit(lambda state, s: jax.tree.map(lambda x: x[s], state), out_shardings=self.replicated)

    def data_rows(self, n: int) -> int:
        """Rows of the data array on the mesh: split rows are padded to a multiple of the device count (the
        padding is never drawn: the permutation is over the n real rows)."""
        return n if self.data == "replicated" else math.ceil(n / self.devices) * self.devices


def plan(config, devices: int | None, data_bytes: int) -> Placement | None:
    """The placement of a run on `devices` devices (None: all there are), or None for one device in one process.

    An asked device count that does not divide the seeds (or, for one seed, the batch) is an error; the default
    takes the most devices that do, so a plain `gancli train` works on any machine.
    """
    available = jax.devices()
    processes = jax.process_count()
    check_count(devices, "--devices")
    if devices is not None and devices > len(available):
        raise GancliError(f"--devices {devices}: this machine has {len(available)} {available[0].platform} device(s)")
    if processes > 1 and devices not in (None, len(available)):
        raise GancliError(f"--devices {devices}: a {processes}-process run trains on all {len(available)} devices of all processes")
    work, what = (config.seeds, "--seeds") if config.seeds > 1 else (config.batch_size, "the batch size")
    if devices is None:
        devices = len(available) if processes > 1 else max(d for d in range(1, len(available) + 1) if work % d == 0)
    if work % devices:
        raise GancliError(f"{what} ({work}) must be divisible by the device count ({devices}): "
                          f"choose --devices among {', '.join(str(d) for d in range(1, len(available) + 1) if work % d == 0)}")
    if devices == 1 and processes == 1:
        return None
    mesh = Mesh(np.array(available[:devices]), (DEVICES,))
    memory = (available[0].memory_stats() or {}).get("bytes_limit")
    fits = memory is None or data_bytes <= REPLICATE_SHARE * memory
    data = "replicated" if fits and processes == 1 else "sharded"
    return Placement(mesh, "seeds" if config.seeds > 1 else "batch", data)


def device_memory() -> tuple[int | None, str]:
    """(bytes one device can hold, a phrase saying so with {} for the amount): an accelerator's memory limit, or on a
    CPU the memory the machine has available now; None when neither is known."""
    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"]), f"one {device.platform} device holds {{}}"
    return available_memory(), "the machine has {} available"


def put(tree, sharding):
    """Host arrays (numpy, or fully replicated jax arrays) as global arrays with this sharding; every process
    holds the whole value and places only what its own devices hold."""
    def one(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree)


def place_data(placement: Placement | None, images: np.ndarray, labels: np.ndarray) -> dict:
    """The training set on the device(s), as the compiled chunk takes it."""
    if placement is None:
        return jax.device_put({"image": jnp.asarray(images), "label": jnp.asarray(labels, jnp.int32)})
    rows = placement.data_rows(len(images))
    pad = [(0, rows - len(images))]
    image = np.pad(np.asarray(images), pad + [(0, 0)] * (images.ndim - 1))  # uint8 or float32, as given
    label = np.pad(np.asarray(labels, np.int32), pad)
    return put({"image": image, "label": label}, placement.data_sharding)


def restore_sharding(placement: Placement | None):
    """Where a restored single-seed state goes: every device of the mesh, or this process's first device.

    Given explicitly, so that a checkpoint written on another device count (whose files name other devices)
    restores here.
    """
    return SingleDeviceSharding(jax.local_devices()[0]) if placement is None else placement.replicated


def with_sharding(tree, sharding):
    """Abstract arrays (ShapeDtypeStruct) carrying a sharding, for Orbax to restore into."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def with_default_sharding(tree):
    """Abstract arrays, those without a sharding given the default device's."""
    default = restore_sharding(None)
    return jax.tree.map(lambda x: x if getattr(x, "sharding", None) is not None else jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=default), tree)


def seed_of(placement: Placement | None, state, s: int):
    """Seed s's state from a multi-seed one in buffers of its own; on a mesh replicated over it, so that every
    process can save it (Orbax saves a global array collectively) and read it."""
    if placement is None:
        return jax.tree.map(lambda x: x[s], state)
    return placement.pick_seed(state, np.int32(s))


def describe(placement: Placement | None) -> dict:
    """The mesh as a checkpoint's metadata records it."""
    devices = jax.devices()[:1] if placement is None else list(placement.mesh.devices.flat)
    return {
        "devices": len(devices),
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "processes": jax.process_count(),
        "hosts": len({d.process_index for d in devices}),
        "split": "none" if placement is None else placement.split,
        "data": "on one device" if placement is None else placement.data,
    }


def words(mesh: dict | None) -> str:
    """A checkpoint's mesh record in words (older checkpoints have none)."""
    if not mesh:
        return "not recorded (written before gancli recorded it: one device)"
    where = f"{mesh['devices']} {mesh['platform']} device{'s' if mesh['devices'] > 1 else ''} ({mesh['device_kind']})"
    where += f", {mesh['processes']} process{'es' if mesh['processes'] > 1 else ''} on {mesh['hosts']} host{'s' if mesh['hosts'] > 1 else ''}"
    split = {"seeds": "the seeds split over them", "batch": "each batch split over them, the networks replicated"}
    if mesh["split"] in split:
        where += f"; {split[mesh['split']]}, the data set {mesh['data']}"
    return where
