"""The Rich progress bar train draws (a gancli.train.Reporter): epoch, iterations/s, ETA, losses and D's outputs."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


# Short names of the game's metrics; an objective's other metrics show under their own names.
SHORT = {"d_loss": "D", "g_loss": "G", "d_real": "D(x)", "d_fake": "D(G(z))"}
NOT_METRICS = ("epoch", "step", "it_per_s", "lr", "momentum")


def describe(metrics: dict[str, float], digits: int) -> str:
    """'D 0.353 G 1.965 D(x) 0.756 ...': whatever metrics an objective reports, in the order given."""
    return " ".join(f"{SHORT.get(k, k)} {v:.{digits}g}" for k, v in metrics.items())


class RichReporter:
    """Shows one bar over all iterations of the run, refreshed after every compiled chunk."""

    def __init__(self, console: Console, epochs: int):
        self.console = console
        self.epochs = epochs
        self._log_every = max(1, epochs // 50)  # about 50 epoch lines for a long run
        self._status = None
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]} it/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=console,
            transient=False,
        )
        self._task = None

    def status(self, text: str) -> None:
        self._end_status()
        self._status = self.console.status(text)
        self._status.start()

    def _end_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def start(self, total: int, done: int, epoch: int) -> None:
        self._end_status()
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=total, completed=done, epoch=epoch + 1, epochs=self.epochs, speed="-", losses=""
        )

    def advance(self, done: int, epoch: int, metrics: dict[str, float], it_per_s: float) -> None:
        losses = describe(metrics, 3)
        self._progress.update(
            self._task, completed=done, epoch=min(epoch + 1, self.epochs), speed=f"{it_per_s:,.0f}", losses=losses
        )

    def epoch_end(self, record: dict[str, Any]) -> None:
        if record["epoch"] % self._log_every and record["epoch"] != self.epochs:
            return
        self._progress.console.print(
            f"epoch {record['epoch']}: {describe({k: v for k, v in record.items() if k not in NOT_METRICS}, 4)}  "
            f"{record['it_per_s']:,.1f} it/s  "
            f"lr {record['lr']:.5f}  momentum {record['momentum']:.3f}",
            highlight=False,
        )

    def message(self, text: str) -> None:
        self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        self._end_status()
        self._progress.stop()
