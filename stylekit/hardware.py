"""The machine: which device, which precision, what the CPU can do. One rule each, for training and inference.

:data:`PRECISIONS` are the names a recipe, ``--precision`` and ``Stylizer.stylize`` accept; :func:`pick_precision`
turns one into a dtype, :func:`pick_device` a device name (``auto``: CUDA, then MPS, then the CPU) into a device.
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import torch

#: precision names, as recipes and options spell them ("auto": see :func:`pick_precision`)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: the dtype of each named precision
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(name: str, what: str = "precision", error: type[Exception] | None = None) -> str:
    """``name`` if it is one of :data:`PRECISIONS`; else ``error`` (a :class:`ConfigError`) naming ``what``."""
    from .errors import ConfigError

    if name not in PRECISIONS:
        raise (error or ConfigError)(f"{what} {name!r}: choose {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]}")
    return name


def pick_device(name: str = "auto", what: str = "device") -> torch.device:
    """'auto' → cuda, then mps, then cpu; anything else is checked against this machine (``what`` names the
    recipe key or option in the error), so a missing GPU is reported before any work starts."""
    if name != "auto":
        return check_device(name, what)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_device(name: str, what: str = "device") -> torch.device:
    """``name`` as a torch device that this machine has; :class:`DeviceError` naming ``what`` otherwise."""
    from .errors import DeviceError

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"{what} {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu":
        return device
    if device.type == "meta":
        raise DeviceError(f"{what} {name!r} holds no data and cannot compute; use auto, cpu, cuda or mps")
    backend = getattr(torch.backends, "mps", None) if device.type == "mps" else getattr(torch, device.type, None)
    available = getattr(backend, "is_available", None)
    if available is None or not available():
        raise DeviceError(f"{what} {name!r}: this machine has no usable {device.type} device (torch "
                          f"{torch.__version__}); use auto or cpu, or run where a {device.type} device is present")
    count = getattr(backend, "device_count", None)
    if device.index is not None and count is not None and device.index >= count():
        raise DeviceError(f"{what} {name!r}: this machine has {count()} {device.type} device(s), numbered "
                          f"0–{count() - 1}; pick one of those")
    return device


def cpu_description() -> str:
    """E.g. 'AMD EPYC (AVX512, avx512_bf16)': the CPU model and the bf16 units that decide CPU speed."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    units = [flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags]
    capability = torch.backends.cpu.get_cpu_capability()
    cap = _onednn_isa_cap()
    capped = [f"oneDNN capped at {cap}"] if cap and cap.upper() != "ALL" else []
    return f"{model} ({', '.join([capability, *units, *capped])})"


def _onednn_isa_cap() -> str:
    """The instruction-set cap the user gave oneDNN (``ONEDNN_MAX_CPU_ISA``, older name ``DNNL_…``), or ''."""
    return os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", ""))


#: oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) below which its bf16 kernels are unavailable
_ISA_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_has_bf16() -> bool:
    """True on CPUs with native bf16 units (AVX512-BF16 or AMX), where bf16 autocast is several × faster.

    An ``ONEDNN_MAX_CPU_ISA`` cap below AVX512_CORE_BF16 (e.g. ``AVX2``, to see how an AVX2-only laptop
    runs) hides the units from oneDNN, so it counts as none."""
    if _onednn_isa_cap().upper() in _ISA_WITHOUT_BF16:
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_reason(name: str, device: torch.device, dtype: torch.dtype) -> str:
    """Why :func:`pick_precision` chose ``dtype``, in a few words for the training header and ``run.json``."""
    if name != "auto":
        return f"set by the recipe (precision: {name})"
    if device.type == "cuda":
        return "this GPU supports bf16" if dtype == torch.bfloat16 else "this GPU has no bf16: fp16 with loss scaling"
    if dtype == torch.bfloat16:
        return "this CPU has bf16 units"
    return "this CPU has no bf16 units: bf16 would be emulated, slower than float32"


def pick_precision(name: str, device: torch.device, *, inference: bool = False) -> torch.dtype:
    """The dtype for precision ``name`` on ``device``. 'auto' → bf16 on CPUs with bf16 units, else fp32; on CUDA
    bf16 for training (fp16 where bf16 is unsupported) and fp16 for ``inference`` (the network's output is a
    bounded tanh, so half precision is safe, and every CUDA GPU has fast fp16).

    On a CPU with bf16 units, bf16 stylizes a 1080p frame 2.2× faster than fp32, at most 3 of 255 levels
    apart (mean 0.3)."""
    if name != "auto":
        return DTYPES[check_precision(name)]
    if device.type == "cuda":
        return torch.float16 if inference or not torch.cuda.is_bf16_supported() else torch.bfloat16
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


def pick_channels_last(setting: bool | None, device: torch.device, dtype: torch.dtype) -> tuple[bool, bool]:
    """Whether (the transformer, the perception networks) run in NHWC memory format.

    ``True``/``False`` apply to both. ``None`` follows what was measured: on CUDA both
    (tensor-core convolutions want NHWC); on a CPU in bf16 only the perception networks —
    oneDNN's bf16 VGG-16 forward+backward is 1.25× faster in NHWC, while the transformer's
    reflection pads and instance norms make it 1.15× slower; otherwise neither.
    """
    if setting is not None:
        return setting, setting
    if device.type == "cuda":
        return True, True
    return False, device.type == "cpu" and dtype == torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed-precision context (a no-op for fp32). Losses are reduced in fp32 by the terms."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
