"""Draw oO's icons (a small and a big ring, "oO", white on black) as PNGs, stdlib only.

Usage: python make_icons.py web/static/icons
Antialiased analytically: each pixel's cover is its distance from the ring's edge.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path


def png(path: Path, size: int, rows: list[bytes], alpha: bool) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    color_type = 4 if alpha else 0  # grey+alpha or grey
    header = struct.pack(">IIBBBBB", size, size, 8, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def rings(size: int, width: float) -> list[list[float]]:
    """Cover (0..1) of the "oO" mark, `width` (fraction of size) wide, centred."""
    big = width * size / 3.32            # outer radius of O
    small = 0.6 * big                    # outer radius of o
    stroke = 0.2 * big
    left = (size - 3.32 * big) / 2
    base = size / 2 + big                # both letters sit on one baseline
    marks = [(left + small, base - small, small), (left + 2 * small + 0.12 * big + big, base - big, big)]
    cover = []
    for y in range(size):
        row = []
        for x in range(size):
            c = 0.0
            for cx, cy, r in marks:
                d = ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2) ** 0.5
                edge = abs(d - (r - stroke / 2)) - stroke / 2   # <0 inside the ring
                c = max(c, min(1.0, max(0.0, 0.5 - edge)))
            row.append(c)
        cover.append(row)
    return cover


def opaque(size: int, width: float) -> list[bytes]:
    return [bytes(round(255 * c) for c in row) for row in rings(size, width)]


def badge(size: int) -> list[bytes]:
    return [b"".join(bytes((255, round(255 * c))) for c in row) for row in rings(size, 0.92)]


def main(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        png(out / f"icon-{size}.png", size, opaque(size, 0.74), alpha=False)
        # Maskable: the mark stays inside the safe circle (radius 40% of the size).
        png(out / f"maskable-{size}.png", size, opaque(size, 0.62), alpha=False)
    png(out / "apple-touch-icon.png", 180, opaque(180, 0.70), alpha=False)
    png(out / "badge-96.png", 96, badge(96), alpha=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "web/static/icons")
