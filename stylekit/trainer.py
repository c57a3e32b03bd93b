"""The training loop: one recipe → one run folder.

What the run folder holds, and how its records, status, lock and checkpoints are
written, is :class:`~stylekit.runs.RunDir`'s; the trainer holds the folder's writer
lock from start to end (rank 0 alone writes when distributed).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text
from torch.utils.data import DataLoader

from . import distributed, multistyle, preflight
from .card import build_card, environment_info, style_entries
from .checkpoint import load_train_state, read_model_state, save_checkpoint
from .composer import LossComposer, build_terms
from .config import Recipe, dump_recipe
from .data import ImageFolder, ResumableSampler, collate, list_images, read_images
from .errors import NonFiniteLossError, StylekitError
from .features import BACKBONE, Features, NetworkSpec, Perception
from .finite import FiniteCheck
from .loggers import LoggerSet, StepMetrics
from .losses.base import LossBatch, TermContext
from .runs.folder import MODEL_FILE, RunDir, RunLockedError
from .run_handle import Run, RunInterrupted
from .stylize import with_margin
from .hardware import autocast, cpu_description, pick_channels_last, pick_device, pick_precision, precision_reason
from .viz import image_grid, plot_loss_curves


class TrainProgress(Progress):
    """A progress bar with a second line for the current value of each loss term."""

    terms: str = ""

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        if self.terms:
            yield Text(self.terms, style="dim")


class Trainer:
    """Builds everything a recipe describes and trains the transformer network."""

    def __init__(self, recipe: Recipe, run_dir: Path | RunDir, *, registry=None, console: Console | None = None,
                 resume: bool = False, run_info: dict[str, Any] | None = None, show_progress: bool = True):
        """``run_info``: how the run was asked for (:func:`~stylekit.runs.run_info`); when resuming, the
        command line's ``overrides``/``without``/``only``, recorded as the resume's changes."""
        if registry is None:
            from .plugins import get_registry

            registry = get_registry(recipe.plugins)
        self.recipe, self.registry = recipe, registry
        self.run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.run_dir = self.run.path
        self.console = console or Console(stderr=True)
        self.show_progress = show_progress
        self.dist = distributed.context()
        if not self.dist.is_main:  # only rank 0 talks and writes
            self.console, self.show_progress = Console(stderr=True, quiet=True), False
        device = pick_device(recipe.device)
        self.dtype = pick_precision(recipe.precision, device)
        self.precision_reason = precision_reason(recipe.precision, device, self.dtype)
        self.device = distributed.device_for(self.dist, device)  # this rank's GPU, when distributed on CUDA
        self.resume = resume
        self.run_info = run_info or {}
        self.step = 0
        self.samples_seen = 0  # global sample position (steps × batch × world size), so any world size can resume
        self.elapsed = 0.0
        self.finite: FiniteCheck | None = None
        self.skipped: list[str] = []
        self.last_metrics: dict[str, Any] = {}
        self.loggers = LoggerSet()
        self._last_log = (0, time.perf_counter())  # (step, time) of the last log, for steps/s

    # -- construction ---------------------------------------------------------
    def build(self) -> None:
        r = self.recipe
        preflight.check_recipe(r, self.run_dir)
        torch.manual_seed(r.schedule.seed)
        if self.dist.is_main:  # first: a logger that cannot work (a missing package) stops the run before any work
            self.loggers = LoggerSet.build(r, self.registry)
        self.model = self.registry.build("model", r.model.name, r.options_at("model"), where="model")
        self.styles = self.model.styles  # a multi-style network: one style per style image
        new_styles, self.init_note = list(self.styles), ""
        if r.model.init:
            report = multistyle.init_from(self.model, r.model.init)
            new_styles, self.init_note = report.new_styles, report.describe(r.model.init)
        multistyle.check_new_styles(r, new_styles)
        self.drawn = [self.styles.index(name) for name in new_styles]  # the styles batches are drawn from
        self.model.to(self.device)
        if self.dist.is_main:  # what every checkpoint's model card says about the style and the software (read once)
            self.card_style = style_entries(r.style.images, r.style.license, r.style.attribution, self.styles)
            self.versions = environment_info()
        perf = r.performance
        self.channels_last, self.perception_channels_last = pick_channels_last(perf.channels_last, self.device,
                                                                               self.dtype)
        self.composer = LossComposer(build_terms(r, self.registry)).to(self.device)
        if not self.composer.terms:
            raise StylekitError("every loss term has weight 0; nothing to train")
        self.finite = FiniteCheck(self.composer.keys, perf.finite_check_every or (
            r.log.every if self.device.type == "cuda" else 1), self.dist)
        self.perception = Perception(self.registry)
        self.perception.require(NetworkSpec.of("backbone", r.backbone.name, r.options_at("backbone.options")),
                                alias=BACKBONE)
        # backbones first: a depth network whose encoder equals a term's backbone (effnet_depth_lite beside an
        # EfficientNet-Lite style network) is then built on it, one encoder pass for both
        for spec in sorted(self.composer.networks(), key=lambda spec: spec.kind != "backbone"):
            self.perception.require(spec)
        self.perception.to(self.device)
        preflight.check_taps(self.composer.terms, self.perception)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.perception_channels_last:
            self.perception.to(memory_format=torch.channels_last)
        self.taps, self.output_taps = self.composer.taps(), self.composer.output_taps()
        self._set_style_targets()
        self.train_model = self._training_module()
        trained = multistyle.trainable_parameters(self.model, r.model.train, new_styles)
        self.optimizer = torch.optim.Adam(trained, lr=r.optim.lr, betas=r.optim.betas,
                                          weight_decay=r.optim.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16 and self.device.type == "cuda")
        self.files = list_images(r.data.root, r.data.extensions)
        self.dataset = ImageFolder(self.files, r.data.image_size, r.data.crop, r.schedule.seed, r.data.cache_dir)
        given = r.log.sample_images  # else the first readable training images
        self.samples, skipped = read_images(given or self.files, "log.sample_images" if given else "data.root",
                                            r.data.image_size, long_side=False, want=None if given else r.log.num_samples)
        self._note_skipped(skipped)

    def _training_module(self) -> torch.nn.Module:
        """The transformer as the hot loop calls it: DDP-wrapped when distributed, compiled on request.

        ``self.model`` stays the plain module, so checkpoints and samples never see wrapper prefixes.
        """
        module = distributed.wrap_ddp(self.model, self.dist, self.device)
        if self.recipe.performance.compile:
            module = torch.compile(module)
            for key in list(self.perception.nets):
                self.perception.nets[key] = torch.compile(self.perception.nets[key])
        return module

    def _set_style_targets(self) -> None:
        style_taps = self.composer.style_taps()
        features, images = [], []
        loaded, skipped = read_images(self.recipe.style.images, "style.images", self.recipe.style.size)
        self._note_skipped(skipped)
        with torch.no_grad(), autocast(self.device, self.dtype):
            for image in loaded:
                image = image.to(self.device)
                images.append(image)
                features.append(self.perception.extract(image, style_taps) if style_taps else {})
        context = TermContext(perception=self.perception, style_images=images, device=self.device,
                              per_style=bool(self.styles))
        for term in self.composer.terms:
            term.prepare(context)
            term.set_style(features)

    def _loader(self) -> DataLoader:
        r = self.recipe
        perf, world = r.performance, self.dist.world_size
        sampler = ResumableSampler(len(self.dataset), r.schedule.seed, start=self.samples_seen // world,
                                   rank=self.dist.rank, num_replicas=world)
        pin = perf.pin_memory if perf.pin_memory is not None else self.device.type == "cuda"
        return DataLoader(self.dataset, batch_size=r.schedule.batch_size, sampler=sampler, collate_fn=collate,
                          num_workers=r.data.workers, pin_memory=pin,
                          persistent_workers=perf.persistent_workers and r.data.workers > 0,
                          prefetch_factor=perf.prefetch_factor if r.data.workers else None)

    # -- state ----------------------------------------------------------------
    def _train_state(self) -> dict[str, Any]:
        return {"step": self.step, "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "torch_rng": torch.get_rng_state(), "elapsed": self.elapsed, "skipped": list(self.skipped),
                "samples": self.samples_seen, "world_size": self.dist.world_size}

    @property
    def finite_every(self) -> int:
        """Steps between host-side NaN/inf checks (1: every step, before the update)."""
        return self.finite.every

    def _restore(self) -> None:
        self.run.check_links()
        ckpt = self.run.latest_checkpoint()
        if ckpt is None:
            raise StylekitError(f"--resume: {self.run_dir} has no checkpoint to resume from")
        step = RunDir.step_of(ckpt)
        if self.dist.is_main:
            self.run.record_resume(step if step is not None else -1, dump_recipe(self.recipe), self.run_info)
            changed = self.run_info.get("changed") or []
            if changed:
                self.console.print(f"Resuming with changes (recorded in {self.run.info.name}, "
                                   f"{self.run.config.name} updated): {', '.join(changed)}")
        self.model.load_state_dict(read_model_state(ckpt / MODEL_FILE, self.model, self.device))
        state, _ = load_train_state(ckpt)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.elapsed, self.skipped = int(state["step"]), float(state["elapsed"]), list(state["skipped"])
        self.samples_seen = int(state.get("samples", self.step * self.recipe.schedule.batch_size))
        if int(state.get("world_size", 1)) != self.dist.world_size:
            self.console.print(f"Resuming with {self.dist.world_size} process(es) (saved with "
                               f"{state.get('world_size', 1)}): data continues at global sample {self.samples_seen}")
        self.console.print(f"[bold]Resuming[/] {self.run_dir} from {ckpt.name} (step {self.step})")

    def _write_status(self, state: str, reason: str = "") -> None:
        if self.dist.is_main:
            self.run.write_status(state, self.step, self.recipe.schedule.iterations, reason, len(self.skipped))

    def _checkpoint(self, barrier: bool = True) -> Path | None:
        path = None
        if self.dist.is_main:
            recipe = self.recipe.model_dump(mode="json")
            card = build_card(yaml.safe_load(dump_recipe(self.recipe)), name=self.run.name, step=self.step,
                              wall_time_s=self.elapsed, metrics=self.last_metrics, style=self.card_style,
                              versions=self.versions)
            meta = {"recipe": recipe, "metrics": self.last_metrics, "card": card}
            path = save_checkpoint(self.run_dir, self.step, self.model, self._train_state(), meta,
                                   keep=self.recipe.log.keep_checkpoints)
        if barrier:
            distributed.barrier(self.dist)
        return path

    # -- outputs --------------------------------------------------------------
    def write_samples(self) -> Path | None:
        if not self.dist.is_main:
            return None
        was_training = self.model.training
        self.model.eval()
        rows = []
        with torch.no_grad(), autocast(self.device, self.dtype):
            for image in self.samples:
                # as `stylekit stylize` shows it: the network's edge rows on a mirrored margin, cropped off
                styled = [with_margin(lambda padded: self.model(padded.to(self.device), *self._sample_styles(s)),
                                      image)[0].float().cpu() for s in range(max(1, len(self.styles)))]
                rows.append([image[0], *styled])
        self.model.train(was_training)
        grid = image_grid(rows, column_titles=["content", *(self.styles or ["stylized"])], cell=256,
                          title=f"{self.recipe.name} - step {self.step}")
        out = self.run.sample_file(self.step)
        out.parent.mkdir(exist_ok=True)
        grid.save(self.run.inside(out))
        self.loggers.log_image("samples", grid, self.step)
        return out

    def _sample_styles(self, index: int) -> tuple[torch.Tensor, ...]:
        """The extra arguments of the network for a sample in style ``index`` (none for a single-style one)."""
        return (torch.tensor([index], device=self.device),) if self.styles else ()

    def style_labels(self, step: int) -> torch.Tensor | None:
        """The style of each image of this rank's batch at ``step`` (None for a single-style network)."""
        if not self.styles:
            return None
        r = self.recipe
        return multistyle.style_labels(r.schedule.seed, step, r.schedule.batch_size, self.drawn,
                                       per_batch=r.style.sampling == "batch", rank=self.dist.rank,
                                       world=self.dist.world_size)

    # -- the loop -------------------------------------------------------------
    @contextmanager
    def _writing(self):
        """Hold the run folder's writer lock (rank 0; every rank learns if it was refused)."""
        refusal = None
        if self.dist.is_main:
            try:
                self.run.acquire()
            except (StylekitError, OSError) as exc:  # refused, or the folder cannot be created
                refusal = exc
            else:
                if not self.resume and self.run.holds_run():
                    self.run.release()
                    state, _ = self.run.state()
                    refusal = StylekitError(
                        f"{self.run_dir} already holds a run ({state}); a new run never writes into another's "
                        f"folder. Continue it with `stylekit train --resume {self.run_dir}`, or give another "
                        "--run-dir (without --run-dir each run gets a fresh folder).")
        message = distributed.broadcast_object(self.dist, str(refusal) if refusal else None)
        if refusal is not None:
            raise refusal
        if message is not None:
            raise RunLockedError(message)
        try:
            if self.run.stale_writer is not None and self.dist.is_main:
                self.console.print(f"[dim]{self.run_dir}: took over the lock left by {self.run.stale_writer.describe()}"
                                   " (that process is gone)[/]")
            yield
        finally:
            if self.dist.is_main:
                self.run.release()

    def fit(self) -> Run:
        with self._writing():
            return self._fit()

    def _fit(self) -> Run:
        self.build()
        r = self.recipe
        if self.resume:
            self._restore()
        elif self.dist.is_main:
            self.run.start(dump_recipe(r), r.name, {**self.run_info, "environment": self.versions})
        self._write_status("running")
        weights = self.composer.weights()
        self.console.print(
            f"[bold]stylekit[/] training [cyan]{r.name}[/] → {self.run_dir}\n"
            f"  device {self._device_name()}, precision {str(self.dtype).removeprefix('torch.')} "
            f"({self.precision_reason}),\n  "
            f"{len(self.files)} training images, batch {r.schedule.batch_size} × {r.data.image_size}px"
            + (f" × {self.dist.world_size} processes" if self.dist.enabled else "") + ", "
            f"backbone {r.backbone.name}, terms " + ", ".join(f"{k}×{w:g}" for k, w in weights.items())
            + (f"\n  {self.init_note}" if self.init_note and not self.resume else ""))
        if self.step >= r.schedule.iterations:
            self.console.print(f"Nothing to do: the run already reached {self.step} steps.")
            self._write_status("finished")
            return Run(self.run_dir, self.step, self._final_table_data(), self.elapsed, list(self.skipped))
        self.finite.start(self.step, self.device)
        sums = {k: torch.zeros((), device=self.device) for k in self.composer.keys}
        count = 0
        self.model.train(r.model.train == "all")  # adding styles: the shared layers run as at inference
        progress = TrainProgress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(bar_width=30),
                                 MofNCompleteColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                 TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self.console, disable=not self.show_progress, transient=False)
        state, reason = "finished", ""
        loop_start, loop_step0 = time.perf_counter(), self.step
        try:
            self.loggers.start(self.run, self.step if self.resume else None, yaml.safe_load(dump_recipe(r)))
            started = time.perf_counter() - self.elapsed  # after the loggers' start (a tracker may connect)
            loop_start, loop_step0 = time.perf_counter(), self.step
            self._last_log = (self.step, loop_start)
            with progress:
                task = progress.add_task(r.name, total=r.schedule.iterations, completed=self.step, rate="")
                batches = iter(self._loader())
                while self.step < r.schedule.iterations:
                    batch = next(batches)
                    self._note_skipped(batch["skipped"])
                    raw = self.train_step(batch["image"])  # a multi-style network: styles drawn for the step
                    self.step += 1
                    self.samples_seen += r.schedule.batch_size * self.dist.world_size
                    for k, v in raw.items():
                        sums[k] += v
                    count += 1
                    self.elapsed = time.perf_counter() - started
                    final = self.step == r.schedule.iterations
                    if self.finite.due(self.step, final, (r.log.every, r.log.sample_every, r.log.checkpoint_every)):
                        self._check_finite()  # deferred check, before anything is written from these weights
                    if self.step % r.log.every == 0 or self.step == r.schedule.iterations:
                        self.last_metrics = self._log(sums, count, weights)
                        sums = {k: torch.zeros((), device=self.device) for k in sums}
                        count = 0
                        rate = (self.step - loop_step0) / max(time.perf_counter() - loop_start, 1e-9)
                        progress.update(task, rate=f"{rate:.2f} it/s")
                        progress.terms = "  ".join(f"{k} {v['raw']:.4g} (×{weights[k]:g} = {v['weighted']:.4g})"
                                                   for k, v in self.last_metrics["terms"].items())
                    if self.step % r.log.sample_every == 0 or self.step == r.schedule.iterations:
                        self.write_samples()
                    if self.step % r.log.checkpoint_every == 0 or self.step == r.schedule.iterations:
                        self._checkpoint()
                        self._write_status("running")  # status.json's step follows the checkpoints
                        if not self.show_progress or not self.console.is_terminal:
                            self.console.print(f"step {self.step}/{r.schedule.iterations}: checkpoint written")
                    progress.update(task, completed=self.step)
        except NonFiniteLossError as exc:
            state, reason = "failed", str(exc)
            raise
        except KeyboardInterrupt:
            state, reason = "interrupted", f"interrupted at step {self.step}"
            if self.step > 0 and self.finite.first_bad_step(collective=False) < 0:
                self._checkpoint(barrier=False)
            raise RunInterrupted(self.run_dir, self.step, self.run.latest_checkpoint()) from None
        except BaseException as exc:
            state, reason = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            try:
                self.loggers.finalize(state)
            finally:
                self._write_status(state, reason)
                self._record_timing(self.step - loop_step0, time.perf_counter() - loop_start)
            if self.dist.is_main:
                plot_loss_curves(self.run.metrics, self.run.loss_curves,
                                 title=f"{r.name} ({self.run_dir.name})")
        return Run(self.run_dir, self.step, self._final_table_data(), self.elapsed, list(self.skipped))

    def train_step(self, images: torch.Tensor, styles: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One optimizer step (``styles``: each image's style, for a multi-style network). Content-side features
        are computed without gradient, once for all terms."""
        x = images.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.styles and styles is None:
            styles = self.style_labels(self.step)
        labels = styles.to(self.device) if styles is not None else None
        with autocast(self.device, self.dtype):
            y = self.train_model(x, labels) if labels is not None else self.train_model(x)
            perceived_y, perceived_x = y, x
            if self.perception_channels_last:
                perceived_y = y.contiguous(memory_format=torch.channels_last)
                perceived_x = x.contiguous(memory_format=torch.channels_last)
            out_features = self.perception.extract(perceived_y, self.output_taps)
            with torch.no_grad():  # only the layers compared between ŷ and x (not the style-only ones)
                content_features = self.perception.extract(perceived_x, self.taps) if self.taps else Features()
        total, raw = self.composer(LossBatch(y, x, out_features, content_features, style=labels))
        self.finite.track(total, raw)
        if self.finite.every == 1:  # per-step check: a bad step never updates the weights
            self._check_finite()
        self.optimizer.zero_grad(set_to_none=True)
        for group in self.optimizer.param_groups:
            group["lr"] = self.recipe.optim.rate(self.step, self.recipe.schedule.iterations)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: v.detach() for k, v in raw.items()}

    def _device_name(self) -> str:
        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        return f"cpu: {cpu_description()}, {torch.get_num_threads()} threads"

    def _record_timing(self, steps: int, seconds: float) -> None:
        if self.dist.is_main and steps > 0:
            self.run.record_timing({
                "wall_time_s": round(self.elapsed, 1), "steps": self.step,
                "steps_per_second": round(steps / max(seconds, 1e-9), 4), "session_steps": steps,
                "precision": str(self.dtype).removeprefix("torch."), "precision_reason": self.precision_reason,
                "device": self._device_name(), "world_size": self.dist.world_size})

    def _check_finite(self) -> None:
        self.finite.check(self.step, self.run.latest_checkpoint(), self.device)

    def _note_skipped(self, skipped: list[str]) -> None:
        for text in skipped:
            path = text.split(": ", 1)[0]
            if all(not s.startswith(path + ": ") for s in self.skipped):
                self.skipped.append(text)
                self.console.print(f"[yellow]warning:[/] skipped unreadable image {escape(text)}", highlight=False)

    def _log(self, sums: dict[str, torch.Tensor], count: int, weights: dict[str, float]) -> dict[str, Any]:
        """Hand the means since the last log to the loggers; returns the row ``metrics.jsonl`` holds."""
        if self.dist.enabled:  # the mean over all ranks' images
            stacked = distributed.all_reduce_(self.dist, torch.stack(list(sums.values()))) / self.dist.world_size
            sums = dict(zip(sums, stacked))
        terms = {k: {"raw": float(v) / max(count, 1), "weighted": weights[k] * float(v) / max(count, 1)}
                 for k, v in sums.items()}
        now = time.perf_counter()
        last_step, last_time = self._last_log
        self._last_log = (self.step, now)
        metrics = StepMetrics(step=self.step, time=self.elapsed, loss=sum(t["weighted"] for t in terms.values()),
                              terms=terms, lr=self.optimizer.param_groups[0]["lr"],
                              steps_per_second=(self.step - last_step) / max(now - last_time, 1e-9))
        self.loggers.log_metrics(metrics)
        return metrics.row()

    def _final_table_data(self) -> dict[str, dict[str, float]]:
        return dict(self.last_metrics.get("terms", {}))
