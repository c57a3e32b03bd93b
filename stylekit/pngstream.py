"""Write an 8-bit RGB PNG a band of rows at a time, so a huge stylized image never exists whole in memory.

The format (https://www.w3.org/TR/png-3/): the signature, an ``IHDR`` chunk, the zlib stream of the filtered
rows in ``IDAT`` chunks, ``IEND``. Each row is filtered as libpng's heuristic does, with the filter (Sub,
Up or Paeth) whose output has the smallest sum of absolute values, so files come out about as small as
Pillow's.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: filter type bytes (PNG spec, 7.3): Sub, Up, Paeth
SUB, UP, PAETH = 1, 2, 4
#: rows filtered together: bounds the temporary arrays (about 12 bytes per pixel of these rows)
CHUNK_ROWS = 64
#: bytes of compressed data per IDAT chunk
IDAT_BYTES = 1 << 20


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def filter_rows(rows: np.ndarray, previous: np.ndarray) -> bytes:
    """``rows`` (h × w × 3 uint8) filtered for a PNG, after the image row ``previous`` (w × 3; zeros above the
    first row): each row is its filter's type byte and the filtered bytes."""
    x = rows.reshape(len(rows), -1).astype(np.int16)
    b = np.concatenate([previous.reshape(1, -1).astype(np.int16), x[:-1]])  # the row above
    a = np.zeros_like(x)
    a[:, 3:] = x[:, :-3]  # the pixel to the left (3 bytes per pixel)
    c = np.zeros_like(x)
    c[:, 3:] = b[:, :-3]  # above-left
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    candidates = np.stack([(x - a) & 0xFF, (x - b) & 0xFF, (x - paeth) & 0xFF]).astype(np.uint8)
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)  # 3 × h
    best = cost.argmin(axis=0)
    chosen = candidates[best, np.arange(len(rows))]
    kinds = np.array([SUB, UP, PAETH], np.uint8)[best]
    return np.concatenate([kinds[:, None], chosen], axis=1).tobytes()


class PngWriter:
    """An RGB PNG of ``width`` × ``height`` written to ``path`` band by band (:meth:`write`), top to bottom.

    Use it as a context manager: the file is complete when the block ends after every row was written; a
    failure (or a missing row) removes the partial file.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, level: int = 6):
        self.path, self.width, self.height = Path(path), width, height
        self._file = open(self.path, "wb")
        self._file.write(SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        self._zlib = zlib.compressobj(level)
        self._pending = bytearray()
        self._previous = np.zeros((width, 3), np.uint8)
        self.rows = 0

    def write(self, rows: np.ndarray) -> None:
        """The next rows of the image, h × width × 3 uint8."""
        if rows.ndim != 3 or rows.shape[1:] != (self.width, 3) or rows.dtype != np.uint8:
            raise ValueError(f"expected rows of {self.width}×3 uint8, got {rows.shape} {rows.dtype}")
        if self.rows + len(rows) > self.height:
            raise ValueError(f"{self.rows + len(rows)} rows written to a PNG {self.height} rows high")
        for start in range(0, len(rows), CHUNK_ROWS):
            part = rows[start:start + CHUNK_ROWS]
            self._pending += self._zlib.compress(filter_rows(part, self._previous))
            self._previous = part[-1]
            self._flush(IDAT_BYTES)
        self.rows += len(rows)

    def _flush(self, at_least: int) -> None:
        if len(self._pending) >= max(at_least, 1):
            self._file.write(_chunk(b"IDAT", bytes(self._pending)))
            self._pending.clear()

    def close(self) -> None:
        if self.rows != self.height:
            raise ValueError(f"{self.rows} of the PNG's {self.height} rows were written")
        self._pending += self._zlib.flush()
        self._flush(0)
        self._file.write(_chunk(b"IEND", b""))
        self._file.close()

    def __enter__(self) -> PngWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if kind is None:
                self.close()
                return
        except BaseException:
            kind = True
            raise
        finally:
            if kind is not None:
                self._file.close()
                self.path.unlink(missing_ok=True)
