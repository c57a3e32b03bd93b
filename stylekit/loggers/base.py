"""What every training logger implements, and what the trainer hands it.

Shaped like Lightning's logger (``lightning/pytorch/loggers/logger.py``: ``log_metrics``,
``log_hyperparams``, ``finalize``), so a W&B or MLflow logger is a thin wrapper around its client.
The trainer calls loggers on rank 0 only, in this order: :meth:`Logger.start`, :meth:`Logger.log_recipe`,
then :meth:`Logger.log_metrics` every ``log.every`` steps and :meth:`Logger.log_image` for every sample
grid, and :meth:`Logger.finalize` once, however training ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, Protocol, Sequence

from ..components import Component, ComponentOptions

if TYPE_CHECKING:
    from PIL import Image


class RunFolder(Protocol):
    """What a logger uses of the run folder it is handed: the trainer passes a :class:`stylekit.runs.RunDir`.

    Declared here so loggers (components) do not import the runtime layer that owns run folders.
    """

    path: Path

    @property
    def name(self) -> str: ...

    def logger_dir(self, logger: str) -> Path:
        """This logger's own folder in the run (``RUN/<logger name>/``), created on first use."""

    def open_metrics(self) -> IO[str]:
        """``metrics.jsonl`` opened for appending (the caller closes it)."""

    def drop_metrics_after(self, step: int) -> None:
        """Forget lines logged after ``step``: a resumed run logs them again."""


class LoggerOptions(ComponentOptions):
    """Base of every logger's options (no common fields; unknown keys are errors)."""


@dataclass(frozen=True)
class StepMetrics:
    """The metrics logged at one step: each term unweighted and weighted, averaged since the last log."""

    step: int
    time: float  # seconds of training so far (resumed runs included)
    loss: float  # the total: sum of the weighted terms
    terms: dict[str, dict[str, float]]  # term → {"raw": …, "weighted": …}
    lr: float
    steps_per_second: float  # over the steps since the last log

    def row(self) -> dict[str, Any]:
        """One line of ``metrics.jsonl``. The format is fixed: ``stylekit runs``, ablation summaries and the
        loss curves read it."""
        return {"step": self.step, "time": round(self.time, 3), "loss": self.loss, "terms": self.terms, "lr": self.lr}

    def scalars(self) -> dict[str, float]:
        """Flat names → values, as tracking tools take them: ``loss``, ``raw/<term>``, ``weighted/<term>``,
        ``lr``, ``steps_per_second``."""
        out = {"loss": self.loss}
        out.update({f"raw/{k}": v["raw"] for k, v in self.terms.items()})
        out.update({f"weighted/{k}": v["weighted"] for k, v in self.terms.items()})
        return out | {"lr": self.lr, "steps_per_second": self.steps_per_second}


class Logger(Component):
    """Base class: set ``name`` (what ``log.loggers`` lists) and implement :meth:`log_metrics`; the rest is optional.

    Options come from the recipe's ``log.logger_options.<name>`` and are validated by ``Options``
    (a :class:`LoggerOptions` subclass). Raise a :class:`~stylekit.errors.StylekitError` from ``__init__``
    when the logger cannot work (a missing package): the run then stops before it starts.
    """

    kind: ClassVar[str] = "logger"
    Options: ClassVar[type[ComponentOptions]] = LoggerOptions

    def __init__(self, options: ComponentOptions | dict | None = None):
        self.options = self.parse_options(options)

    def start(self, run: RunFolder, resumed_at: int | None) -> None:
        """Before the first logged step. ``run`` is the run folder (``run.logger_dir(self.name)`` is this logger's
        own folder in it); ``resumed_at`` is the checkpoint step a resumed run continues from (None: a new run),
        after which anything logged earlier will be logged again."""

    def log_recipe(self, recipe: dict[str, Any]) -> None:
        """The fully resolved recipe (as ``config.yaml`` holds it), once per start: the run's hyperparameters."""

    def log_metrics(self, metrics: StepMetrics) -> None:
        """Every ``log.every`` steps (and at the last step)."""
        raise NotImplementedError

    def log_image(self, tag: str, image: Image.Image, step: int) -> None:
        """A picture, e.g. the sample grid (tag ``samples``: content | stylized) every ``log.sample_every`` steps."""

    def finalize(self, status: str) -> None:
        """Once, however training ended: ``status`` is finished, failed or interrupted. Flush and close here."""


class LoggerSet:
    """The recipe's loggers, called together (empty on ranks other than 0)."""

    def __init__(self, loggers: Sequence[Logger] = ()):
        self.loggers = list(loggers)
        self.started: list[Logger] = []  # finalize closes these (a logger whose start failed has nothing open)

    @classmethod
    def build(cls, recipe, registry) -> LoggerSet:
        """One logger per name in the recipe's ``log.loggers``, built from its validated options."""
        return cls([registry.build(kind, name, recipe.options_at(where), where=where)
                    for kind, name, _, where, _ in recipe.components() if kind == "logger"])

    def __iter__(self):
        return iter(self.loggers)

    def start(self, run: RunFolder, resumed_at: int | None, recipe: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.start(run, resumed_at)
            self.started.append(logger)
            logger.log_recipe(recipe)

    def log_metrics(self, metrics: StepMetrics) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics)

    def log_image(self, tag: str, image: Image.Image, step: int) -> None:
        for logger in self.loggers:
            logger.log_image(tag, image, step)

    def finalize(self, status: str) -> None:
        """Finalize every started logger, even when one fails (the first failure is raised afterwards)."""
        failure: BaseException | None = None
        started, self.started = self.started, []
        for logger in started:
            try:
                logger.finalize(status)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
