"""Rich progress: the bar train draws (a gancli.train.Reporter: epoch, iterations/s, ETA, losses and D's outputs),
and the bars of long library work that reports progress(what, done, total): dataset builds, reference statistics
(feature-network and Inception features of a test split, its neighbour radii, its nearest training images; the
reference train --eval-every builds before training), and evaluations (Parzen passes, features of the samples,
precision/recall, memorisation, a conditional run's classifier features, --classify over the test split)."""

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
    """Shows a bar over the current epoch's iterations, refreshed after every compiled chunk, and a line of the
    epoch's mean metrics after every epoch. optimizer: the run's; its momentum is shown for sgd alone (Adam's
    record holds b1 there)."""

    def __init__(self, console: Console, epochs: int, optimizer: str = "sgd"):
        self.console = console
        self.epochs = epochs
        self.optimizer = optimizer
        self._per_epoch = 0
        self._epoch = None  # the epoch the bar is counting
        self._status = None
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]} it/s"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("{task.fields[losses]}"),
            console=console,
            transient=False,
        )
        self._task = None
        self._work: WorkBars | None = None
        self._running = False  # the bar is drawn: stop() ends it once (Rich prints a line at each stop off a terminal)

    def work(self, what: str, done: int, total: int) -> None:
        """progress(what, done, total) of work before training starts (a dataset build): bars in place of the
        status line, put away when training starts."""
        self._end_status()
        if self._work is None:
            self._work = WorkBars(self.console)
        self._work(what, done, total)

    def _end_work(self) -> None:
        if self._work is not None:
            self._work.__exit__(None, None, None)
            self._work = None

    def status(self, text: str) -> None:
        self._end_work()
        self._end_status()
        self._status = self.console.status(text)
        self._status.start()

    def _end_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def start(self, total: int, done: int, epoch: int) -> None:
        self._end_status()
        self._end_work()
        self._per_epoch = total // self.epochs  # train counts total as epochs x iterations per epoch
        self._epoch = epoch
        self._progress.start()
        self._running = True
        self._task = self._progress.add_task(
            "train", total=self._per_epoch, completed=done - epoch * self._per_epoch, epoch=epoch + 1,
            epochs=self.epochs, speed="-", eta="-:--:--", losses="",
        )

    def advance(self, done: int, epoch: int, metrics: dict[str, float], it_per_s: float) -> None:
        # epoch: the one the chunk ran in (a chunk never spans two), so its last chunk shows it full
        completed = done - epoch * self._per_epoch
        if epoch != self._epoch:  # a new epoch: its own bar, clock and ETA
            self._epoch = epoch
            self._progress.reset(self._task, total=self._per_epoch, completed=0)
        left = (self._per_epoch - completed) / it_per_s if it_per_s > 0 else None
        self._progress.update(
            self._task, completed=completed, epoch=epoch + 1, speed=f"{it_per_s:,.0f}",
            eta="-:--:--" if left is None else _clock(left), losses=describe(metrics, 3),
        )

    def epoch_end(self, record: dict[str, Any]) -> None:
        momentum = f"  momentum {record['momentum']:.3f}" if self.optimizer == "sgd" else ""
        self._progress.console.print(
            f"epoch {record['epoch']}: {describe({k: v for k, v in record.items() if k not in NOT_METRICS}, 4)}  "
            f"{record['it_per_s']:,.1f} it/s  "
            f"lr {record['lr']:.5f}{momentum}",
            highlight=False,
        )

    def message(self, text: str) -> None:
        self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        self._end_status()
        self._end_work()
        if self._running:
            self._running = False
            self._progress.stop()


def _clock(seconds: float) -> str:
    """H:MM:SS, as Rich's own time columns show it."""
    minutes, s = divmod(int(seconds + 0.5), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}"


class WorkBars:
    """progress(what, done, total) as one bar per `what` with its ETA, drawn while the block runs."""

    def __init__(self, console: Console):
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                                  transient=False)
        self._tasks: dict[str, Any] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._tasks:
            self._progress.stop()

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self._tasks:  # drawn only once there is long work to show
            self._progress.start()
        if what not in self._tasks:
            self._tasks[what] = self._progress.add_task(what, total=total)
        self._progress.update(self._tasks[what], completed=done, total=total)
