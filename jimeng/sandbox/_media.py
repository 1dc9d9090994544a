"""Deterministic, dependency-free media for the offline sandbox.

The sandbox has to hand out files that real viewers, players and ``ffprobe`` accept, without
pulling Pillow, numpy or ffmpeg into the runtime, so everything here is standard library only:

* :func:`render_png` draws a picture derived from the prompt (gradient bands, shapes and a
  caption in a tiny bitmap font) and encodes it as an 8-bit RGB PNG.
* :func:`render_mp4` wraps a hand-written H.264 stream (one I_PCM IDR frame followed by
  all-skip P frames) in a fast-start MP4, so the file is small yet plays for the right duration.
* :func:`mp4_info` reads an MP4's headers back. :func:`png_size` and :func:`sniff_image` live in
  :mod:`jimeng._imageinfo` (the SDK validates local inputs with them) and are re-exported here.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from jimeng._imageinfo import ImageFormat, png_size, sniff_image

__all__ = [
    "ImageFormat",
    "Mp4Info",
    "mp4_info",
    "png_size",
    "render_mp4",
    "render_png",
    "sniff_image",
]

MAX_PNG_SIDE = 16384
MAX_VIDEO_SIDE = 4096
MAX_VIDEO_FRAMES = 100_000
MAX_VIDEO_FPS = 240

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CAPTION_CHARS = 24

# --------------------------------------------------------------------------------------------
# Bitmap font: classic 5x7 glyphs for printable ASCII (0x20-0x7E), one hex string per glyph,
# five column bytes each, bit 0 = top row.
# --------------------------------------------------------------------------------------------

_FONT_HEX = (
    "0000000000"  # space
    "00005f0000"  # !
    "0007000700"  # "
    "147f147f14"  # #
    "242a7f2a12"  # $
    "2313086462"  # %
    "3649552250"  # &
    "0005030000"  # '
    "001c224100"  # (
    "0041221c00"  # )
    "082a1c2a08"  # *
    "08083e0808"  # +
    "0050300000"  # ,
    "0808080808"  # -
    "0060600000"  # .
    "2010080402"  # /
    "3e5149453e"  # 0
    "00427f4000"  # 1
    "4261514946"  # 2
    "2141454b31"  # 3
    "1814127f10"  # 4
    "2745454539"  # 5
    "3c4a494930"  # 6
    "0171090503"  # 7
    "3649494936"  # 8
    "064949291e"  # 9
    "0036360000"  # :
    "0056360000"  # ;
    "0814224100"  # <
    "1414141414"  # =
    "0041221408"  # >
    "0201510906"  # ?
    "324979413e"  # @
    "7e1111117e"  # A
    "7f49494936"  # B
    "3e41414122"  # C
    "7f4141221c"  # D
    "7f49494941"  # E
    "7f09090101"  # F
    "3e41415132"  # G
    "7f0808087f"  # H
    "00417f4100"  # I
    "2040413f01"  # J
    "7f08142241"  # K
    "7f40404040"  # L
    "7f0204027f"  # M
    "7f0408107f"  # N
    "3e4141413e"  # O
    "7f09090906"  # P
    "3e4151215e"  # Q
    "7f09192946"  # R
    "4649494931"  # S
    "01017f0101"  # T
    "3f4040403f"  # U
    "1f2040201f"  # V
    "7f2018207f"  # W
    "6314081463"  # X
    "0304780403"  # Y
    "6151494543"  # Z
    "007f414100"  # [
    "0204081020"  # backslash
    "0041417f00"  # ]
    "0402010204"  # ^
    "4040404040"  # _
    "0001020400"  # `
    "2054545478"  # a
    "7f48444438"  # b
    "3844444420"  # c
    "384444487f"  # d
    "3854545418"  # e
    "087e090102"  # f
    "0c5252523e"  # g
    "7f08040478"  # h
    "00447d4000"  # i
    "2040443d00"  # j
    "007f102844"  # k
    "00417f4000"  # l
    "7c04180478"  # m
    "7c08040478"  # n
    "3844444438"  # o
    "7c14141408"  # p
    "081414187c"  # q
    "7c08040408"  # r
    "4854545420"  # s
    "043f444020"  # t
    "3c4040207c"  # u
    "1c2040201c"  # v
    "3c4030403c"  # w
    "4428102844"  # x
    "0c5050503c"  # y
    "4464544c44"  # z
    "0008364100"  # {
    "00007f0000"  # |
    "0041360800"  # }
    "0804081008"  # ~
)
_FONT = bytes.fromhex(_FONT_HEX)
# Anything the font cannot show (non-ASCII, controls) is drawn as a hollow box so the caption
# still has one cell per character.
_BOX_GLYPH = bytes.fromhex("7f4141417f")


def _glyph(ch: str) -> bytes:
    """Column bytes of the 5x7 glyph for ``ch`` (box glyph when not printable ASCII)."""
    code = ord(ch)
    if 0x20 <= code <= 0x7E:
        start = (code - 0x20) * 5
        return _FONT[start : start + 5]
    return _BOX_GLYPH


def _wrap(text: str, limit: int) -> list[str]:
    """Greedy word wrap to ``limit`` characters, hard-breaking words that are too long."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        while len(word) > limit:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:limit])
            word = word[limit:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= limit:
            current += " " + word
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


# --------------------------------------------------------------------------------------------
# Scene: a prompt-derived picture described row by row as painter's-order spans, so encoders
# can build whole rows with bytes repetition instead of touching every pixel in Python.
# --------------------------------------------------------------------------------------------

_Rgb = tuple[int, int, int]
# (x0, x1, palette index) painted in order; the first op always covers the full row.
_RowOps = tuple[tuple[int, int, int], ...]


class _Draws:
    """Deterministic stream of pseudo-random numbers from a prompt (stable across versions)."""

    def __init__(self, prompt: str) -> None:
        self._seed = hashlib.sha512(
            b"jimeng-sandbox\x00" + prompt.encode("utf-8", "surrogatepass")
        ).digest()
        self._pool = self._seed
        self._pos = 0
        self._counter = 0

    def frac(self) -> float:
        """A float in [0, 1]."""
        if self._pos + 2 > len(self._pool):
            self._counter += 1
            self._pool = hashlib.sha512(self._seed + self._counter.to_bytes(4, "big")).digest()
            self._pos = 0
        value = int.from_bytes(self._pool[self._pos : self._pos + 2], "big")
        self._pos += 2
        return value / 0xFFFF

    def between(self, low: float, high: float) -> float:
        return low + (high - low) * self.frac()


def _hls(hue: float, lightness: float, saturation: float) -> _Rgb:
    r, g, b = colorsys.hls_to_rgb(hue % 1.0, lightness, saturation)
    return (round(r * 255), round(g * 255), round(b * 255))


def _mix(a: _Rgb, b: _Rgb, t: float) -> _Rgb:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


class _Scene:
    """Gradient bands, a diagonal stripe, discs/rings, a block and a caption bar."""

    def __init__(self, prompt: str, width: int, height: int) -> None:
        self.width = width
        self.height = height
        draws = _Draws(prompt)
        base_hue = draws.frac()
        palette: list[_Rgb] = []

        def colour(rgb: _Rgb) -> int:
            palette.append(rgb)
            return len(palette) - 1

        # Background: a vertical gradient quantised into visible bands.
        top = _hls(base_hue, draws.between(0.18, 0.32), draws.between(0.45, 0.8))
        bottom = _hls(
            base_hue + draws.between(0.08, 0.3), draws.between(0.55, 0.75), draws.between(0.4, 0.8)
        )
        n_bands = 6 + int(draws.frac() * 10)
        self._bands = [colour(_mix(top, bottom, k / (n_bands - 1))) for k in range(n_bands)]

        short = min(width, height)
        # Diagonal stripe: centre x moves by ``slope`` pixels per row.
        self._stripe_colour = colour(
            _hls(base_hue + 0.5, draws.between(0.45, 0.65), draws.between(0.5, 0.9))
        )
        self._stripe_half = width * draws.between(0.04, 0.1)
        self._stripe_slope = draws.between(0.3, 1.2) * (1 if draws.frac() < 0.5 else -1)
        self._stripe_x = width * draws.between(0.2, 0.8)

        # Axis-aligned block.
        bw, bh = width * draws.between(0.15, 0.35), height * draws.between(0.15, 0.35)
        bx, by = (width - bw) * draws.frac(), (height - bh) * draws.frac()
        self._block = (
            round(bx),
            round(by),
            round(bx + bw),
            round(by + bh),
            colour(_hls(base_hue + draws.between(0.2, 0.4), 0.5, draws.between(0.5, 0.9))),
        )

        # Discs; some get a hole punched in them so they read as rings.
        self._discs: list[tuple[float, float, float, int]] = []
        for i in range(2 + int(draws.frac() * 2.99)):
            radius = short * draws.between(0.08, 0.28)
            cx, cy = width * draws.frac(), height * draws.frac()
            hue = base_hue + draws.between(0.1, 0.9)
            rgb = _hls(hue, draws.between(0.5, 0.75), draws.between(0.6, 0.95))
            self._discs.append((cx, cy, radius, colour(rgb)))
            if i == 0 or draws.frac() < 0.4:
                inner = radius * draws.between(0.35, 0.7)
                hole = _hls(hue + 0.5, draws.between(0.2, 0.4), 0.6)
                self._discs.append((cx, cy, inner, colour(hole)))

        # Caption bar along the bottom edge.
        self._panel_colour = colour(_hls(base_hue, 0.1, 0.35))
        self._ink_colour = colour(_hls(base_hue, 0.94, 0.6))
        self._panel_top = height
        self._text_top = height
        self._scale = 1
        self._text_rows: list[list[_RowOps]] = []
        self._layout_caption(prompt)
        self.palette = palette

    def _layout_caption(self, prompt: str) -> None:
        text = " ".join(prompt.split())
        if len(text) > _CAPTION_CHARS:
            text = text[: _CAPTION_CHARS - 3].rstrip() + "..."
        if not text:
            return
        best: tuple[int, list[str]] | None = None
        for limit in range(math.ceil(len(text) / 3), len(text) + 1):
            lines = _wrap(text, limit)
            if len(lines) > 3:
                continue
            longest = max(len(line) for line in lines)
            # Cells are 6x8 font pixels (glyph plus spacing); keep a 2-pixel margin all round
            # and cap the bar at a quarter of the height so the picture stays visible.
            scale = min(
                self.width // (longest * 6 + 3), int(self.height * 0.25) // (len(lines) * 8 + 3)
            )
            if best is None or scale > best[0] or (scale == best[0] and len(lines) < len(best[1])):
                best = (scale, lines)
        assert best is not None
        scale, lines = best
        if scale < 1:
            return
        pad = 2 * scale
        block_h = (len(lines) * 8 - 1) * scale
        self._scale = scale
        self._panel_top = self.height - block_h - 2 * pad
        self._text_top = self._panel_top + pad
        for line in lines:
            left = (self.width - (len(line) * 6 - 1) * scale) // 2
            per_row: list[_RowOps] = []
            for gy in range(7):
                runs: list[tuple[int, int, int]] = []
                for i, ch in enumerate(line):
                    columns = _glyph(ch)
                    for gx in range(5):
                        if not columns[gx] >> gy & 1:
                            continue
                        x0 = left + (i * 6 + gx) * scale
                        if runs and runs[-1][1] == x0:
                            runs[-1] = (runs[-1][0], x0 + scale, self._ink_colour)
                        else:
                            runs.append((x0, x0 + scale, self._ink_colour))
                per_row.append(tuple(runs))
            self._text_rows.append(per_row)

    def row(self, y: int) -> _RowOps:
        width = self.width
        if y >= self._panel_top:
            panel = ((0, width, self._panel_colour),)
            offset = y - self._text_top
            if offset >= 0:
                line, within = divmod(offset // self._scale, 8)
                if line < len(self._text_rows) and within < 7:
                    return panel + self._text_rows[line][within]
            return panel

        ops = [(0, width, self._bands[y * len(self._bands) // self.height])]
        centre = self._stripe_x + self._stripe_slope * (y - self.height / 2)
        x0 = max(0, round(centre - self._stripe_half))
        x1 = min(width, round(centre + self._stripe_half))
        if x0 < x1:
            ops.append((x0, x1, self._stripe_colour))
        bx0, by0, bx1, by1, block_colour = self._block
        if by0 <= y < by1 and bx0 < bx1:
            ops.append((bx0, bx1, block_colour))
        yc = y + 0.5
        for cx, cy, radius, disc_colour in self._discs:
            dy = yc - cy
            if -radius < dy < radius:
                half = math.sqrt(radius * radius - dy * dy)
                x0 = max(0, round(cx - half))
                x1 = min(width, round(cx + half))
                if x0 < x1:
                    ops.append((x0, x1, disc_colour))
        return tuple(ops)


def _raster(ops: _RowOps, pixels: list[bytes], full_rows: list[bytes]) -> bytes:
    """Paint one row; pixel size comes from ``pixels`` (3 bytes RGB, 1 byte for a plane)."""
    size = len(pixels[0])
    _, _, background = ops[0]
    row = bytearray(full_rows[background])
    for x0, x1, index in ops[1:]:
        row[x0 * size : x1 * size] = pixels[index] * (x1 - x0)
    return bytes(row)


# --------------------------------------------------------------------------------------------
# PNG
# --------------------------------------------------------------------------------------------


def _check_side(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def render_png(prompt: str, width: int, height: int) -> bytes:
    """Return a deterministic 8-bit RGB PNG of exactly ``width`` x ``height`` for ``prompt``.

    Colours, bands and shapes come from a hash of the prompt; the first characters of the
    prompt are drawn as a caption when the image is large enough. Results are LRU-cached.

    Raises:
        ValueError: if a side is outside 1..16384.
    """
    _check_side("width", width, 1, MAX_PNG_SIDE)
    _check_side("height", height, 1, MAX_PNG_SIDE)
    return _render_png_cached(prompt, width, height)


@functools.lru_cache(maxsize=32)
def _render_png_cached(prompt: str, width: int, height: int) -> bytes:
    scene = _Scene(prompt, width, height)
    pixels = [bytes(rgb) for rgb in scene.palette]
    full_rows = [p * width for p in pixels]

    # Level 6 is affordable up to ~4 Mpx; beyond that a faster level keeps the 4096x4096
    # case well inside the latency budget (the data is dominated by long runs anyway).
    compressor = zlib.compressobj(6 if width * height <= 1 << 22 else 3)
    # Rows identical to the previous one use the Up filter, which turns them into zeros that
    # zlib swallows almost for free.
    up_row = b"\x02" + bytes(width * 3)
    out: list[bytes] = []
    pending: list[bytes] = []
    pending_size = 0
    previous: _RowOps | None = None
    for y in range(height):
        ops = scene.row(y)
        if ops == previous:
            pending.append(up_row)
        else:
            pending.append(b"\x00")
            pending.append(_raster(ops, pixels, full_rows))
            previous = ops
        pending_size += width * 3 + 1
        if pending_size >= 1 << 20:
            out.append(compressor.compress(b"".join(pending)))
            pending.clear()
            pending_size = 0
    out.append(compressor.compress(b"".join(pending)))
    out.append(compressor.flush())

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    # iTXt text must be valid UTF-8 without NULs, so lone surrogates are replaced.
    text = prompt[:1000].replace("\x00", "").encode("utf-8", "replace")
    description = b"Description\x00\x00\x00\x00\x00" + text
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"iTXt", description),
            _png_chunk(b"IDAT", b"".join(out)),
            _png_chunk(b"IEND", b""),
        )
    )


# --------------------------------------------------------------------------------------------
# H.264 (Annex-free, length-prefixed NAL units for MP4)
# --------------------------------------------------------------------------------------------


class _BitWriter:
    def __init__(self) -> None:
        self._out = bytearray()
        self._acc = 0
        self._bits = 0

    def u(self, n: int, value: int) -> None:
        self._acc = (self._acc << n) | value
        self._bits += n
        while self._bits >= 8:
            self._bits -= 8
            self._out.append((self._acc >> self._bits) & 0xFF)
        self._acc &= (1 << self._bits) - 1

    def ue(self, value: int) -> None:
        code = value + 1
        length = code.bit_length()
        self.u(length - 1, 0)
        self.u(length, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> None:
        if self._bits:
            self.u(8 - self._bits, 0)

    def raw(self, data: bytes) -> None:
        # Only used right after align_zero (PCM samples are byte aligned).
        self._out += data

    def rbsp(self) -> bytes:
        """Finish with rbsp_trailing_bits and return the payload."""
        self.u(1, 1)
        self.align_zero()
        return bytes(self._out)


def _nal(header: int, rbsp: bytes) -> bytes:
    """Build a NAL unit, inserting emulation-prevention bytes (00 00 0x -> 00 00 03 0x)."""
    out = bytearray((header,))
    start = search = 0
    size = len(rbsp)
    while True:
        hit = rbsp.find(b"\x00\x00", search)
        if hit < 0 or hit + 2 >= size:
            break
        if rbsp[hit + 2] <= 3:
            out += rbsp[start : hit + 2]
            out.append(3)
            start = search = hit + 2
        else:
            search = hit + 2
    out += rbsp[start:]
    return bytes(out)


_NAL_SPS = 0x67  # nal_ref_idc 3, type 7
_NAL_PPS = 0x68  # nal_ref_idc 3, type 8
_NAL_IDR = 0x65  # nal_ref_idc 3, type 5
_NAL_P = 0x41  # nal_ref_idc 2, type 1
_LOG2_MAX_FRAME_NUM = 16
_MB_TYPE_I_PCM = 25

# (level_idc, MaxMBPS, MaxFS) from Table A-1.
_LEVELS = (
    (10, 1485, 99),
    (11, 3000, 396),
    (12, 6000, 396),
    (13, 11880, 396),
    (21, 19800, 792),
    (22, 20250, 1620),
    (30, 40500, 1620),
    (31, 108000, 3600),
    (32, 216000, 5120),
    (40, 245760, 8192),
    (42, 522240, 8704),
    (50, 589824, 22080),
    (51, 983040, 36864),
    (52, 2073600, 36864),
    (60, 4177920, 139264),
    (61, 8355840, 139264),
    (62, 16711680, 139264),
)


def _level_for(mb_w: int, mb_h: int, fps: int) -> int:
    frame = mb_w * mb_h
    for level, max_mbps, max_fs in _LEVELS:
        limit = math.isqrt(8 * max_fs)  # neither side may exceed sqrt(8 * MaxFS) macroblocks
        if frame <= max_fs and frame * fps <= max_mbps and mb_w <= limit and mb_h <= limit:
            return level
    return _LEVELS[-1][0]


def _sps(width: int, height: int, fps: int) -> bytes:
    mb_w, mb_h = (width + 15) // 16, (height + 15) // 16
    w = _BitWriter()
    w.u(8, 66)  # Baseline
    w.u(8, 0xC0)  # constraint_set0 + constraint_set1: constrained baseline
    w.u(8, _level_for(mb_w, mb_h, fps))
    w.ue(0)  # seq_parameter_set_id
    w.ue(_LOG2_MAX_FRAME_NUM - 4)
    w.ue(2)  # pic_order_cnt_type 2: output order == decode order, no POC syntax in slices
    w.ue(1)  # max_num_ref_frames
    w.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    w.ue(mb_w - 1)
    w.ue(mb_h - 1)
    w.u(1, 1)  # frame_mbs_only_flag
    w.u(1, 1)  # direct_8x8_inference_flag
    crop_right, crop_bottom = (mb_w * 16 - width) // 2, (mb_h * 16 - height) // 2
    if crop_right or crop_bottom:
        w.u(1, 1)  # frame_cropping_flag (units of 2 samples for 4:2:0)
        w.ue(0)
        w.ue(crop_right)
        w.ue(0)
        w.ue(crop_bottom)
    else:
        w.u(1, 0)
    w.u(1, 1)  # vui_parameters_present_flag
    w.u(1, 1)  # aspect_ratio_info_present_flag
    w.u(8, 1)  # square pixels
    w.u(1, 0)  # overscan_info_present_flag
    w.u(1, 1)  # video_signal_type_present_flag
    w.u(3, 5)  # video_format: unspecified
    w.u(1, 0)  # limited range
    w.u(1, 1)  # colour_description_present_flag
    w.u(8, 1)  # BT.709 primaries
    w.u(8, 1)  # BT.709 transfer
    w.u(8, 1)  # BT.709 matrix (matches _yuv)
    w.u(1, 0)  # chroma_loc_info_present_flag
    w.u(1, 1)  # timing_info_present_flag
    w.u(32, 1)  # num_units_in_tick
    w.u(32, 2 * fps)  # time_scale (two ticks per frame)
    w.u(1, 1)  # fixed_frame_rate_flag
    w.u(1, 0)  # nal_hrd_parameters_present_flag
    w.u(1, 0)  # vcl_hrd_parameters_present_flag
    w.u(1, 0)  # pic_struct_present_flag
    w.u(1, 1)  # bitstream_restriction_flag: tells decoders there is no reordering delay
    w.u(1, 1)  # motion_vectors_over_pic_boundaries_flag
    w.ue(0)  # max_bytes_per_pic_denom
    w.ue(0)  # max_bits_per_mb_denom
    w.ue(15)  # log2_max_mv_length_horizontal
    w.ue(15)  # log2_max_mv_length_vertical
    w.ue(0)  # max_num_reorder_frames
    w.ue(1)  # max_dec_frame_buffering
    return _nal(_NAL_SPS, w.rbsp())


def _pps() -> bytes:
    w = _BitWriter()
    w.ue(0)  # pic_parameter_set_id
    w.ue(0)  # seq_parameter_set_id
    w.u(1, 0)  # entropy_coding_mode_flag: CAVLC
    w.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
    w.ue(0)  # num_slice_groups_minus1
    w.ue(0)  # num_ref_idx_l0_default_active_minus1
    w.ue(0)  # num_ref_idx_l1_default_active_minus1
    w.u(1, 0)  # weighted_pred_flag
    w.u(2, 0)  # weighted_bipred_idc
    w.se(0)  # pic_init_qp_minus26
    w.se(0)  # pic_init_qs_minus26
    w.se(0)  # chroma_qp_index_offset
    w.u(1, 1)  # deblocking_filter_control_present_flag
    w.u(1, 0)  # constrained_intra_pred_flag
    w.u(1, 0)  # redundant_pic_cnt_present_flag
    return _nal(_NAL_PPS, w.rbsp())


def _yuv(rgb: _Rgb) -> tuple[int, int, int]:
    """BT.709 limited-range conversion (Y 16..235, C 16..240), so PCM samples are never 0."""
    r, g, b = rgb
    luma = 0.2126 * r + 0.7152 * g + 0.0722 * b
    y = 16 + luma * 219 / 255
    cb = 128 + (b - luma) / 1.8556 * 224 / 255
    cr = 128 + (r - luma) / 1.5748 * 224 / 255
    return (
        min(235, max(16, round(y))),
        min(240, max(16, round(cb))),
        min(240, max(16, round(cr))),
    )


def _planes(prompt: str, width: int, height: int) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Render the scene as Y, Cb and Cr planes padded to whole macroblocks."""
    scene = _Scene(prompt, width, height)
    mb_w, mb_h = (width + 15) // 16, (height + 15) // 16
    yuv = [_yuv(rgb) for rgb in scene.palette]
    pad_luma, pad_chroma = mb_w * 16 - width, mb_w * 8 - width // 2

    luma_px = [bytes((c[0],)) for c in yuv]
    cb_px = [bytes((c[1],)) for c in yuv]
    cr_px = [bytes((c[2],)) for c in yuv]
    luma_full = [p * width for p in luma_px]
    cb_full = [p * (width // 2) for p in cb_px]
    cr_full = [p * (width // 2) for p in cr_px]

    def padded(row: bytes, pad: int) -> bytes:
        # Replicate the edge sample; the padding is cropped away by the SPS anyway.
        return row + row[-1:] * pad if pad else row

    luma: list[bytes] = []
    previous: _RowOps | None = None
    row = b""
    for y in range(height):
        ops = scene.row(y)
        if ops != previous:
            row = padded(_raster(ops, luma_px, luma_full), pad_luma)
            previous = ops
        luma.append(row)
    luma.extend([luma[-1]] * (mb_h * 16 - height))

    cb: list[bytes] = []
    cr: list[bytes] = []
    previous = None
    cb_row = cr_row = b""
    for y in range(0, height, 2):
        # Chroma sample k takes the colour of luma sample 2k on the even row (point sampling).
        ops = tuple(((x0 + 1) // 2, (x1 + 1) // 2, c) for x0, x1, c in scene.row(y))
        if ops != previous:
            cb_row = padded(_raster(ops, cb_px, cb_full), pad_chroma)
            cr_row = padded(_raster(ops, cr_px, cr_full), pad_chroma)
            previous = ops
        cb.append(cb_row)
        cr.append(cr_row)
    cb.extend([cb[-1]] * (mb_h * 8 - len(cb)))
    cr.extend([cr[-1]] * (mb_h * 8 - len(cr)))
    return luma, cb, cr


def _idr_slice(prompt: str, width: int, height: int) -> bytes:
    luma, cb, cr = _planes(prompt, width, height)
    mb_w, mb_h = (width + 15) // 16, (height + 15) // 16
    w = _BitWriter()
    w.ue(0)  # first_mb_in_slice
    w.ue(7)  # slice_type: I (all slices)
    w.ue(0)  # pic_parameter_set_id
    w.u(_LOG2_MAX_FRAME_NUM, 0)  # frame_num
    w.ue(0)  # idr_pic_id
    w.u(1, 0)  # no_output_of_prior_pics_flag
    w.u(1, 0)  # long_term_reference_flag
    w.se(0)  # slice_qp_delta
    w.ue(1)  # disable_deblocking_filter_idc: PCM needs no filtering
    for my in range(mb_h):
        luma_rows = luma[my * 16 : my * 16 + 16]
        cb_rows = cb[my * 8 : my * 8 + 8]
        cr_rows = cr[my * 8 : my * 8 + 8]
        for mx in range(mb_w):
            lx, cx = mx * 16, mx * 8
            w.ue(_MB_TYPE_I_PCM)
            w.align_zero()  # pcm_alignment_zero_bit
            w.raw(b"".join(r[lx : lx + 16] for r in luma_rows))
            w.raw(b"".join(r[cx : cx + 8] for r in cb_rows))
            w.raw(b"".join(r[cx : cx + 8] for r in cr_rows))
    return _nal(_NAL_IDR, w.rbsp())


def _skip_slice(frame_num: int, mb_count: int) -> bytes:
    w = _BitWriter()
    w.ue(0)  # first_mb_in_slice
    w.ue(5)  # slice_type: P (all slices)
    w.ue(0)  # pic_parameter_set_id
    w.u(_LOG2_MAX_FRAME_NUM, frame_num % (1 << _LOG2_MAX_FRAME_NUM))
    w.u(1, 0)  # num_ref_idx_active_override_flag
    w.u(1, 0)  # ref_pic_list_modification_flag_l0
    w.u(1, 0)  # adaptive_ref_pic_marking_mode_flag: sliding window
    w.se(0)  # slice_qp_delta
    w.ue(1)  # disable_deblocking_filter_idc
    w.ue(mb_count)  # mb_skip_run covering the whole picture: a copy of the previous frame
    return _nal(_NAL_P, w.rbsp())


# --------------------------------------------------------------------------------------------
# MP4 (ISO BMFF) writer
# --------------------------------------------------------------------------------------------

_UNITY_MATRIX = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


def _moov(
    width: int,
    height: int,
    fps: int,
    sizes: list[int],
    sps: bytes,
    pps: bytes,
    chunk_offset: int,
) -> bytes:
    frames = len(sizes)
    # One timescale for movie and media keeps both durations exact (frames / fps seconds).
    timescale, delta = fps * 1000, 1000
    duration = frames * delta

    mvhd = _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, timescale, duration),
        struct.pack(">iH", 0x10000, 0x0100),
        bytes(10),
        _UNITY_MATRIX,
        bytes(24),
        struct.pack(">I", 2),  # next_track_ID
    )
    tkhd = _full_box(
        b"tkhd",
        0,
        3,  # enabled | in movie
        struct.pack(">IIIII", 0, 0, 1, 0, duration),
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0, 0),
        _UNITY_MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = _full_box(
        b"mdhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, timescale, duration),
        struct.pack(">HH", 0x55C4, 0),  # language "und"
    )
    hdlr = _full_box(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\x00")
    vmhd = _full_box(b"vmhd", 0, 1, bytes(8))
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1)))

    avcc = _box(
        b"avcC",
        bytes((1, sps[1], sps[2], sps[3], 0xFF, 0xE1)),  # 4-byte NAL lengths, one SPS
        struct.pack(">H", len(sps)),
        sps,
        b"\x01",
        struct.pack(">H", len(pps)),
        pps,
    )
    name = b"jimeng sandbox"
    avc1 = _box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),  # data_reference_index
        bytes(16),
        struct.pack(">HH", width, height),
        struct.pack(">III", 0x00480000, 0x00480000, 0),  # 72 dpi
        struct.pack(">H", 1),  # frame_count
        bytes((len(name),)) + name.ljust(31, b"\x00"),
        struct.pack(">Hh", 0x18, -1),
        avcc,
        _box(b"pasp", struct.pack(">II", 1, 1)),
    )
    stbl = _box(
        b"stbl",
        _full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
        _full_box(b"stts", 0, 0, struct.pack(">III", 1, frames, delta)),
        _full_box(b"stss", 0, 0, struct.pack(">II", 1, 1)),
        _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, frames, 1)),
        _full_box(b"stsz", 0, 0, struct.pack(f">II{frames}I", 0, frames, *sizes)),
        _full_box(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset)),
    )
    minf = _box(b"minf", vmhd, dinf, stbl)
    mdia = _box(b"mdia", mdhd, hdlr, minf)
    trak = _box(b"trak", tkhd, mdia)
    return _box(b"moov", mvhd, trak)


def render_mp4(
    prompt: str, *, width: int = 320, height: int = 180, frames: int = 121, fps: int = 24
) -> bytes:
    """Return a small, valid H.264/MP4 clip of ``frames / fps`` seconds for ``prompt``.

    The first frame shows the same picture :func:`render_png` draws for the prompt (coded as
    raw I_PCM macroblocks); every later frame is a P frame of skipped macroblocks, so the file
    stays small while players still report the full duration. Results are LRU-cached.

    Raises:
        ValueError: if ``width`` or ``height`` is odd or outside 2..4096, ``frames`` is outside
            1..100000 or ``fps`` outside 1..240.
    """
    _check_side("width", width, 2, MAX_VIDEO_SIDE)
    _check_side("height", height, 2, MAX_VIDEO_SIDE)
    _check_side("frames", frames, 1, MAX_VIDEO_FRAMES)
    _check_side("fps", fps, 1, MAX_VIDEO_FPS)
    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for 4:2:0 video, got {width}x{height}")
    return _render_mp4_cached(prompt, width, height, frames, fps)


@functools.lru_cache(maxsize=32)
def _render_mp4_cached(prompt: str, width: int, height: int, frames: int, fps: int) -> bytes:
    mb_count = ((width + 15) // 16) * ((height + 15) // 16)
    sps, pps = _sps(width, height, fps), _pps()
    nals = [_idr_slice(prompt, width, height)]
    nals.extend(_skip_slice(i, mb_count) for i in range(1, frames))
    samples = [struct.pack(">I", len(nal)) + nal for nal in nals]
    sizes = [len(s) for s in samples]

    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2avc1mp41")
    # moov goes before mdat (fast start); its size does not depend on the offset value.
    moov_size = len(_moov(width, height, fps, sizes, sps, pps, 0))
    mdat_payload = b"".join(samples)
    offset = len(ftyp) + moov_size + 8
    moov = _moov(width, height, fps, sizes, sps, pps, offset)
    return b"".join((ftyp, moov, struct.pack(">I", 8 + len(mdat_payload)), b"mdat", mdat_payload))


# --------------------------------------------------------------------------------------------
# MP4 reader
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mp4Info:
    """Summary of the first video track of an MP4 file."""

    brand: str
    duration: float
    width: int
    height: int
    frames: int
    codec: str

    @property
    def fps(self) -> float:
        return self.frames / self.duration if self.duration else 0.0


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Yield ``(type, payload_start, box_end)`` for the boxes in ``data[start:end]``."""
    pos = start
    while pos < end:
        if end - pos < 8:
            raise ValueError(f"truncated box header at offset {pos}")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise ValueError(f"truncated box header at offset {pos}")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:  # box extends to the end of its container
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"box {kind!r} at offset {pos} has invalid size {size}")
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for child, payload, box_end in _boxes(data, start, end):
        if child == kind:
            return payload, box_end
    return None


def _need(found: tuple[int, int] | None, what: str) -> tuple[int, int]:
    if found is None:
        raise ValueError(f"MP4 has no {what} box")
    return found


def _timing(data: bytes, payload: int) -> tuple[int, int]:
    """(timescale, duration) from an mvhd/mdhd payload, version 0 or 1."""
    if data[payload] == 1:
        timescale, duration = struct.unpack_from(">IQ", data, payload + 20)
    else:
        timescale, duration = struct.unpack_from(">II", data, payload + 12)
    return int(timescale), int(duration)


def mp4_info(data: bytes) -> Mp4Info:
    """Parse enough of an MP4's box tree to describe its first video track.

    Raises:
        ValueError: if the data is not an MP4 with a video track.
    """
    data = bytes(data)
    # Walk every top-level box so a truncated download (mdat cut short) is rejected too.
    top: dict[bytes, tuple[int, int]] = {}
    for kind, payload, end in _boxes(data, 0, len(data)):
        top.setdefault(kind, (payload, end))
    ftyp = _need(top.get(b"ftyp"), "ftyp")
    brand = data[ftyp[0] : ftyp[0] + 4].decode("latin-1")
    moov = _need(top.get(b"moov"), "moov")

    for kind, trak_start, trak_end in _boxes(data, *moov):
        if kind != b"trak":
            continue
        mdia = _need(_child(data, trak_start, trak_end, b"mdia"), "mdia")
        hdlr = _need(_child(data, *mdia, b"hdlr"), "hdlr")
        if data[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
            continue
        timescale, duration = _timing(data, _need(_child(data, *mdia, b"mdhd"), "mdhd")[0])
        if not timescale:
            mvhd = _need(_child(data, *moov, b"mvhd"), "mvhd")
            timescale, duration = _timing(data, mvhd[0])
        minf = _need(_child(data, *mdia, b"minf"), "minf")
        stbl = _need(_child(data, *minf, b"stbl"), "stbl")
        stsd = _need(_child(data, *stbl, b"stsd"), "stsd")
        entries = list(_boxes(data, stsd[0] + 8, stsd[1]))
        if not entries:
            raise ValueError("MP4 stsd has no sample entry")
        codec_kind, entry, _ = entries[0]
        # Visual sample entry: 8 bytes reserved/data_reference_index, 16 bytes predefined.
        width, height = struct.unpack_from(">HH", data, entry + 24)
        stsz = _need(_child(data, *stbl, b"stsz"), "stsz")
        (frames,) = struct.unpack_from(">I", data, stsz[0] + 8)
        return Mp4Info(
            brand=brand,
            duration=duration / timescale if timescale else 0.0,
            width=int(width),
            height=int(height),
            frames=int(frames),
            codec=codec_kind.decode("latin-1"),
        )
    raise ValueError("MP4 has no video track")
