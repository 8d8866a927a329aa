"""The fake's MP4s: a structurally valid ISO-BMFF file (``ftyp``, ``moov``, ``mdat``) of a given size and length.

No encoder is installed at test time (no ffmpeg), so the one H.264 sample in ``mdat`` is opaque filler: the file
parses as an MP4 whose track header (``tkhd``), sample entry (``avc1``) and movie header (``mvhd``) carry the
requested width, height and duration, which is all the bot reads (it never re-encodes a video). ``mp4_facts``
reads them back for the tests. ``padding`` grows ``mdat`` (a video over Discord's upload limit).
"""

from __future__ import annotations

import random
import struct

_TIMESCALE = 1000
_FPS = 24


def _box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _track(width: int, height: int, duration: int, sample: int, chunk_offset: int) -> bytes:
    ids = struct.pack(">IIIII", 0, 0, 1, 0, duration)  # created, modified, track 1, reserved, duration
    tkhd = _full(b"tkhd", 0, 3, ids, b"\0" * 16, _MATRIX, struct.pack(">II", width << 16, height << 16))
    mdhd = _full(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, _TIMESCALE, duration), struct.pack(">HH", 0x55C4, 0))
    hdlr = _full(b"hdlr", 0, 0, struct.pack(">I", 0), b"vide", b"\0" * 12, b"VideoHandler\0")
    avcc = _box(b"avcC", bytes([1, 0x42, 0, 0x1E, 0xFF, 0xE0, 0x01]))
    avc1 = _box(
        b"avc1",
        b"\0" * 6 + struct.pack(">H", 1) + b"\0" * 16,
        struct.pack(">HHIIIH", width, height, 0x480000, 0x480000, 0, 1),
        b"\0" * 32 + struct.pack(">Hh", 0x18, -1),
        avcc,
    )
    stbl = _box(
        b"stbl",
        _full(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
        _full(b"stts", 0, 0, struct.pack(">III", 1, 1, duration)),
        _full(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, 1, 1)),
        _full(b"stsz", 0, 0, struct.pack(">III", 0, 1, sample)),
        _full(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset)),
    )
    dinf = _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1)))
    minf = _box(b"minf", _full(b"vmhd", 0, 1, b"\0" * 8), dinf, stbl)
    return _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))


def render_mp4(width: int, height: int, seconds: int, seed: int, padding: int = 0) -> bytes:
    """An MP4 of ``width``×``height`` lasting ``seconds``, its filler drawn from ``seed``, ``padding`` bytes larger."""
    sample = random.Random(seed).randbytes(256) + b"\0" * padding
    duration = seconds * _TIMESCALE
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41")
    mvhd = _full(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, _TIMESCALE, duration),
        struct.pack(">IH", 0x10000, 0x100),
        b"\0" * 10,
        _MATRIX,
        b"\0" * 24,
        struct.pack(">I", 2),
    )
    moov_size = len(_box(b"moov", mvhd, _track(width, height, duration, len(sample), 0)))
    offset = len(ftyp) + moov_size + 8
    moov = _box(b"moov", mvhd, _track(width, height, duration, len(sample), offset))
    return ftyp + moov + _box(b"mdat", sample)


def _children(data: bytes, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    boxes: dict[bytes, tuple[int, int]] = {}
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        if size < 8:
            break
        boxes.setdefault(kind, (start + 8, start + size))
        start += size
    return boxes


def mp4_facts(data: bytes) -> tuple[int, int, float]:
    """``(width, height, seconds)`` of an MP4 (its first track's header and its movie header)."""
    top = _children(data, 0, len(data))
    if b"ftyp" not in top or b"moov" not in top:
        raise ValueError("not an MP4")
    moov = _children(data, *top[b"moov"])
    mvhd_start = moov[b"mvhd"][0]
    timescale, duration = struct.unpack(">II", data[mvhd_start + 12 : mvhd_start + 20])
    _, tkhd_end = _children(data, *moov[b"trak"])[b"tkhd"]
    width, height = struct.unpack(">II", data[tkhd_end - 8 : tkhd_end])
    return width >> 16, height >> 16, duration / timescale
