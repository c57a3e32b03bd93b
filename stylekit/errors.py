"""Exceptions that the CLI turns into a one-paragraph message instead of a traceback."""

from __future__ import annotations


class StylekitError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""


class PluginError(StylekitError):
    """A plugin could not be loaded, or registered something invalid."""


class UnknownComponentError(StylekitError, KeyError):
    """A name that no plugin registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class ConfigError(StylekitError):
    """A recipe or override is invalid; the message names the key path."""


class OptionsError(ConfigError):
    """A component's options do not validate; ``problems`` lists each bad key (one indented line each)."""

    def __init__(self, message: str, problems: str):
        super().__init__(message)
        self.problems = problems


class WeightsError(StylekitError):
    """Pretrained weights could not be used; the message names the file and what to do."""


class WeightsNotFoundError(WeightsError):
    """Pretrained weights are not available locally and may not be downloaded."""


class WeightsMismatchError(WeightsError):
    """A weights file does not fit the network: the message names the file, the first mismatching keys
    and the shapes the network expects."""


class UnsafeCheckpointError(WeightsError):
    """A pickled checkpoint asked for something other than tensors and allowed module classes."""


class NonFiniteLossError(StylekitError):
    """A loss term became NaN or infinite during training."""


class ImageInputError(StylekitError, ValueError):
    """An image handed to the Python API has a kind, shape, dtype or value the API does not take."""


class ImageError(StylekitError):
    """No usable image where one is needed (missing, unreadable, none readable in a folder)."""


class CheckpointError(StylekitError):
    """A checkpoint file is missing, corrupt, of another format, or disagrees with its own options."""


class DeviceError(StylekitError):
    """A device string that torch does not know, or a device this machine does not have."""
