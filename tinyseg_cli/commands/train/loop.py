"""The training loop of ``tinyseg train`` (SPEC §4.5): steps, validation, checkpoints, resume.

Every random choice is a function of the seed and of the (epoch, position, step) it belongs
to, never of how much randomness was consumed before, so a run resumed from a checkpoint
takes exactly the steps an uninterrupted run takes (bit-identical on CPU).
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from tinyseg_cli.commands.train.common import (
    Validation,
    degenerate_prediction,
    predicted_and_truth,
)
from tinyseg_cli.commands.train.config import TrainOptions
from tinyseg_cli.commands.train.log import TrainLog
from tinyseg_cli.commands.train.modality import Modality, modality_of
from tinyseg_cli.data.datasets import EpochSampler
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tinyseg_cli.losses import build_loss
from tinyseg_cli.models import build_model, load_encoder_weights, normalise_spec
from tinyseg_cli.runtime.distributed import Distributed


@dataclass
class StepReport:
    """What the progress display shows after each optimiser step."""

    step: int
    total: int | None  # None: ends after a number of epochs of unknown length
    epoch: int
    loss: float
    lr: float
    images_per_s: float
    loader_share: float  # fraction of the step time spent waiting for data


@dataclass
class Hooks:
    """Callbacks of the CLI layer (progress, messages); the loop prints nothing."""

    on_start: Callable[[int | None], None] = lambda total: None
    on_step: Callable[[StepReport], None] = lambda report: None
    on_validation: Callable[[int, Validation, bool], None] = lambda step, v, best: None
    on_message: Callable[[str], None] = lambda text: None


@dataclass
class Position:
    """Where a run stands: steps done, the epoch and the batches of it already trained."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    best: float | None = None
    best_step: int | None = None
    # per class, pixels (voxels) the best checkpoint predicted on the val split, and truth
    best_counts: dict[str, list[int]] | None = None
    loader_seconds: float = 0.0
    step_seconds: float = 0.0
    history: list[float] = field(default_factory=list)


def make_optimizer(model: torch.nn.Module, o: TrainOptions) -> torch.optim.Optimizer:
    """adam, adamw or sgd with the run's learning rate and weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if o.optimizer == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.optimizer == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    raise TinysegError(f"unknown optimiser {o.optimizer!r} (adam, adamw, sgd)")


def lr_factor(o: TrainOptions, total_steps: int | None) -> Callable[[int], float]:
    """Learning-rate multiplier per step: constant, exponential (staircase) or cosine."""
    if o.schedule == "constant":
        return lambda step: 1.0
    if o.schedule == "exponential":  # lr · decay^⌊step / decay_every⌋, as the seed studies
        return lambda step: o.lr_decay ** (step // max(1, o.decay_every))
    if o.schedule == "cosine":
        if total_steps is None:
            raise TinysegError("--schedule cosine needs a known length: --iterations, or epochs")
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    raise TinysegError(f"unknown schedule {o.schedule!r} (constant, exponential, cosine)")


def total_steps(modality: Modality, world: int) -> int | None:
    """Steps of the whole run: --iterations, or the sum over epochs of their batches."""
    o = modality.options
    if o.iterations is not None:
        return o.iterations
    assert o.epochs is not None
    per_rank = (modality.epoch_size(e) // world // o.batch_size for e in range(o.epochs))
    return sum(per_rank)


class _CurrentEpoch(Sampler):
    """The keys of the epoch being trained, so that one DataLoader serves every epoch.

    Its workers then start once per run: workers started anew each epoch cost seconds per
    epoch on CPU, because after each fork the training process copies every page it writes
    (copy-on-write) — ~4 s per epoch for Unet-mobilenet_v2 at 256², batch 8 (benchmarks/).
    """

    def __init__(self) -> None:
        self.epoch: EpochSampler | None = None

    def __iter__(self) -> Any:
        return iter(self.epoch if self.epoch is not None else ())

    def __len__(self) -> int:
        return len(self.epoch) if self.epoch is not None else 0


@contextmanager
def _stop_on_interrupt() -> Any:
    """First Ctrl-C asks the loop to stop after the current step; a second one aborts."""
    requested = {"stop": False}
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if requested["stop"]:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        requested["stop"] = True

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C as it is
        yield requested
        return
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


class Trainer:
    """One run: the model, its optimiser and schedule, the data, and where it stands."""

    def __init__(self, plan: Any, device: torch.device, dist: Distributed) -> None:
        self.plan, self.device, self.dist = plan, device, dist
        self.modality = modality = modality_of(plan)
        o = plan.options
        self.spec = normalise_spec(modality.model_spec())
        self.config = modality.config(self.spec)
        torch.manual_seed(o.seed)
        self.model = build_model(self.spec)
        self.run_dir = Path(o.run_dir)
        self.loss_fn = build_loss(
            o.loss,
            n_classes=len(plan.class_map),
            binary=o.binary is not None,
            class_weights=plan.class_weights,
            params=o.loss_params,
            ignore_index=o.ignore_index,
            class_names=plan.class_map.names,
        )
        self.config["loss"] = self.loss_fn.config
        self.position = Position()
        self.validated_at: int | None = None
        self.log = TrainLog(plan.class_map.to_metadata())
        self.total = total_steps(modality, dist.world)
        self.model.to(device)
        self.optimizer = make_optimizer(self.model, o)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(o, self.total))
        self.network = dist.wrap(self.model, device)
        self.amp = o.amp and modality.amp and device.type == "cuda"
        self.dataset = modality.dataset()
        self._keys = _CurrentEpoch()
        self._data: DataLoader | None = None

    def initialise_weights(self) -> None:
        """Weights of a fresh run: pre-trained encoder weights, then ``init_weights`` (the
        previous step's best model under ``tune-oii --warm-start``) when given."""
        o = self.plan.options
        load_encoder_weights(self.model, self.spec, o.encoder_weights)
        if o.init_weights:
            self.model.load_state_dict(load_checkpoint(o.init_weights).state_dict)

    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue from ``checkpoint`` (model, optimiser, schedule, position, log)."""
        self.model.load_state_dict(checkpoint.state_dict)
        state = checkpoint.state
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.position = Position(
            step=checkpoint.step,
            epoch=checkpoint.epoch,
            batch=int(state["batch"]),
            best=state.get("best"),
            best_step=state.get("best_step"),
            best_counts=state.get("best_counts"),
        )
        self.log = TrainLog.read(
            self.run_dir / "log.parquet", self.log.class_names, checkpoint.step
        )

    # -- one step -------------------------------------------------------------------------
    def _step(self, batch: Any) -> tuple[float, int]:
        o = self.plan.options
        torch.manual_seed(o.seed * 1_000_003 + self.position.step)  # dropout etc., per step
        self.network.train()
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else nullcontext()
        with autocast:
            logits, targets, items = self.modality.forward(self.network, batch, self.device)
        loss = self.loss_fn(logits.float(), targets)
        if not torch.isfinite(loss):
            raise TinysegError(
                f"loss became {loss.item()} at step {self.position.step + 1} (lower --lr, or "
                "check the class weights)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(self.dist.mean(loss.detach())), items

    def _loader(self, patches: Sequence[Any]) -> DataLoader:
        o = self.plan.options
        self._keys.epoch = EpochSampler(
            patches,
            epoch=self.position.epoch,
            seed=o.seed,
            batch_size=o.batch_size,
            rank=self.dist.rank,
            world=self.dist.world,
            start=self.position.batch * o.batch_size,
        )
        if self._data is None:
            self._data = DataLoader(
                self.dataset,
                batch_size=o.batch_size,
                sampler=self._keys,
                num_workers=o.workers,
                pin_memory=self.device.type == "cuda",
                drop_last=True,
                persistent_workers=o.workers > 0,
                collate_fn=self.modality.collate,
            )
        return self._data

    def _finished(self) -> bool:
        o = self.plan.options
        if o.iterations is not None:
            return self.position.step >= o.iterations
        return self.position.epoch >= (o.epochs or 0)

    # -- the run --------------------------------------------------------------------------
    def run(self, hooks: Hooks) -> None:
        """Train until the last step; Ctrl-C stops after the current step with a checkpoint."""
        o = self.plan.options
        hooks.on_start(self.total)
        with _stop_on_interrupt() as interrupt:
            try:
                while not self._finished():
                    patches = self.modality.epoch_items(self.position.epoch)
                    if len(patches) // self.dist.world < o.batch_size:
                        raise TinysegError(
                            f"epoch {self.position.epoch} holds {len(patches)} items, fewer "
                            f"than --batch-size {o.batch_size} (per process)"
                        )
                    stopped = self._epoch(patches, hooks, interrupt)
                    if stopped:
                        self.save_last()
                        raise KeyboardInterrupt
                    if self.position.batch == 0:  # a whole epoch went by
                        self._end_of_epoch(hooks)
            finally:
                self._data = None  # ends the loader's worker processes
        if (
            self.modality.validates
            and self.plan.options.val_every
            and self.validated_at != self.position.step
        ):
            self._validate(hooks)  # --iterations ended inside an epoch
        self.save_last()
        if self.dist.is_main and not (self.run_dir / "best.pt").exists():
            self._save("best.pt")  # no validation ran: the last weights are the best known
        counts = self.position.best_counts
        if self.dist.is_main and counts is not None:
            warning = degenerate_prediction(
                counts["predicted"], counts["truth"], self.plan.class_map.names, self.modality.unit
            )
            if warning:
                hooks.on_message(f"best.pt (step {self.position.best_step}) {warning}")

    def _epoch(self, patches: Sequence[Any], hooks: Hooks, interrupt: dict[str, bool]) -> bool:
        o = self.plan.options
        waited = time.perf_counter()
        for batch in self._loader(patches):
            started = time.perf_counter()
            loss, items = self._step(batch)
            done = time.perf_counter()
            p = self.position
            p.step, p.batch = p.step + 1, p.batch + 1
            seconds = done - waited
            report = StepReport(
                step=p.step,
                total=self.total,
                epoch=p.epoch,
                loss=loss,
                lr=self.scheduler.get_last_lr()[0],
                images_per_s=items * self.dist.world / max(seconds, 1e-9),
                loader_share=(started - waited) / max(seconds, 1e-9),
            )
            self.log.add_step(report.step, report.epoch, loss, report.lr, report.images_per_s)
            hooks.on_step(report)
            if o.checkpoint_every and p.step % o.checkpoint_every == 0:
                self._save(f"step-{p.step}.pt")
                self.save_last()
            if interrupt["stop"]:
                return True
            if o.iterations is not None and p.step >= o.iterations:
                return False
            waited = time.perf_counter()
        self.position.epoch += 1
        self.position.batch = 0
        return False

    def _end_of_epoch(self, hooks: Hooks) -> None:
        o = self.plan.options
        epoch = self.position.epoch
        if (
            self.modality.validates
            and o.val_every
            and (epoch % o.val_every == 0 or self._finished())
        ):
            self._validate(hooks)
        if not self._finished():
            self.save_last()

    def _validate(self, hooks: Hooks) -> None:
        self.validated_at = self.position.step
        if self.dist.is_main:
            result = self.modality.validate(self.model, self.config, self.device)
            self.log.add_validation(self.position.step, self.position.epoch, result)
            improved = result.score is not None and (
                self.position.best is None or result.score > self.position.best
            )
            if improved:
                self.position.best, self.position.best_step = result.score, self.position.step
                self.position.best_counts = predicted_and_truth(result)
                self._save("best.pt")
            hooks.on_validation(self.position.step, result, improved)
        self.dist.barrier()

    def save_last(self) -> None:
        """Write ``last.pt`` (resumable) and the training log; main process only."""
        if self.dist.is_main:
            self._save("last.pt")
            self.log.write(self.run_dir / "log.parquet", self.config)
        self.dist.barrier()

    def _save(self, name: str) -> None:
        if not self.dist.is_main:
            return
        p = self.position
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "batch": p.batch,
            "best": p.best,
            "best_step": p.best_step,
            "best_counts": p.best_counts,
        }
        checkpoint = Checkpoint(self.config, self.model.state_dict(), p.step, p.epoch, state)
        save_checkpoint(self.run_dir / name, checkpoint)
