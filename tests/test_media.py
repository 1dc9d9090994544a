"""Tests for the sandbox's stdlib-only PNG/MP4 generators and header sniffers.

The generated files are checked with small independent readers written here (PNG chunk/zlib
decoding, an ISO BMFF box walker and an Exp-Golomb reader for the H.264 headers), so nothing
depends on ffmpeg or Pillow.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jimeng.sandbox import _media
from jimeng.sandbox._media import (
    Mp4Info,
    mp4_info,
    png_size,
    render_mp4,
    render_png,
    sniff_image,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# --------------------------------------------------------------------------------------------
# Minimal independent PNG reader
# --------------------------------------------------------------------------------------------


def read_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB, non-interlaced PNG into rows of RGB bytes, verifying every CRC."""
    assert data[:8] == PNG_SIGNATURE
    pos = 8
    chunks: list[tuple[bytes, bytes]] = []
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        payload = data[pos + 8 : pos + 8 + length]
        assert len(payload) == length, "truncated chunk"
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        assert crc == zlib.crc32(kind + payload), f"bad CRC in {kind!r}"
        chunks.append((kind, payload))
        pos += 12 + length
    assert pos == len(data)
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    assert (depth, colour, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(p for k, p in chunks if k == b"IDAT"))
    stride = width * 3
    assert len(raw) == height * (stride + 1)
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], raw[start + 1 : start + 1 + stride]
        if kind == 0:
            row = line
        elif kind == 2:  # Up
            row = bytes((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        else:
            raise AssertionError(f"unexpected filter type {kind}")
        rows.append(row)
        previous = row
    return width, height, rows


def pixels(row: bytes) -> list[bytes]:
    return [row[i : i + 3] for i in range(0, len(row), 3)]


def caption_mask(rows: list[bytes]) -> list[list[bool]]:
    """Ink mask of the caption bar: bottom rows made only of the bar colour plus one ink colour."""
    panel = rows[-1][:3]
    assert set(pixels(rows[-1])) == {panel}, "bottom row should be the plain caption bar"
    ink: bytes | None = None
    mask: list[list[bool]] = []
    for row in reversed(rows):
        colours = set(pixels(row)) - {panel}
        if ink is None and len(colours) == 1:
            ink = next(iter(colours))
        if colours - {ink}:
            break
        mask.append([px != panel for px in pixels(row)])
    mask.reverse()
    return mask


# --------------------------------------------------------------------------------------------
# Minimal independent ISO BMFF / H.264 readers
# --------------------------------------------------------------------------------------------

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"dinf", b"stbl"}


def boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    pos = start
    while pos < end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        assert size >= 8, f"bad size for {kind!r}"
        assert pos + size <= end, f"{kind!r} overruns its parent"
        yield kind, pos + 8, pos + size
        pos += size
    assert pos == end, "child boxes must exactly fill their parent"


def find(data: bytes, *path: bytes) -> tuple[int, int]:
    start, end = 0, len(data)
    for name in path:
        for kind, payload, box_end in boxes(data, start, end):
            if kind == name:
                start, end = payload, box_end
                break
        else:
            raise AssertionError(f"missing box {name!r}")
    return start, end


STBL = (b"moov", b"trak", b"mdia", b"minf", b"stbl")


def stsz_sizes(data: bytes) -> list[int]:
    start, _ = find(data, *STBL, b"stsz")
    uniform, count = struct.unpack_from(">II", data, start + 4)
    assert uniform == 0
    return list(struct.unpack_from(f">{count}I", data, start + 12))


def samples(data: bytes) -> list[bytes]:
    start, _ = find(data, *STBL, b"stco")
    count, offset = struct.unpack_from(">II", data, start + 4)
    assert count == 1
    out = []
    for size in stsz_sizes(data):
        out.append(data[offset : offset + size])
        offset += size
    return out


def avcc(data: bytes) -> tuple[bytes, bytes, int]:
    """(sps, pps, nal length size) from the avc1 sample entry."""
    stsd, stsd_end = find(data, *STBL, b"stsd")
    entry_kind, entry, entry_end = next(boxes(data, stsd + 8, stsd_end))
    assert entry_kind == b"avc1"
    # The sample entry's fixed fields take 78 bytes before its child boxes.
    children = {kind: (s, e) for kind, s, e in boxes(data, entry + 78, entry_end)}
    start, _ = children[b"avcC"]
    record = data[start:]
    assert record[0] == 1  # configurationVersion
    length_size = (record[4] & 3) + 1
    assert record[5] & 0x1F == 1
    (sps_len,) = struct.unpack_from(">H", record, 6)
    sps = record[8 : 8 + sps_len]
    assert record[8 + sps_len] == 1
    (pps_len,) = struct.unpack_from(">H", record, 9 + sps_len)
    pps = record[11 + sps_len : 11 + sps_len + pps_len]
    assert record[1:4] == sps[1:4]  # profile, compatibility and level mirror the SPS
    return sps, pps, length_size


def unescape(nal: bytes) -> bytes:
    return re.sub(b"\x00\x00\x03", b"\x00\x00", nal[1:])


class BitReader:
    def __init__(self, data: bytes) -> None:
        self.bits = "".join(f"{b:08b}" for b in data)
        self.pos = 0

    def u(self, n: int) -> int:
        value = int(self.bits[self.pos : self.pos + n] or "0", 2)
        self.pos += n
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bits[self.pos] == "0":
            zeros += 1
            self.pos += 1
        return self.u(zeros + 1) - 1

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


def parse_sps(sps: bytes) -> dict[str, int]:
    r = BitReader(unescape(sps))
    out = {"profile": r.u(8), "constraints": r.u(8), "level": r.u(8), "sps_id": r.ue()}
    out["log2_max_frame_num"] = r.ue() + 4
    out["poc_type"] = r.ue()
    assert out["poc_type"] == 2  # nothing else to read for type 2
    out["max_num_ref_frames"] = r.ue()
    r.u(1)
    mb_w, mb_h = r.ue() + 1, r.ue() + 1
    out["frame_mbs_only"] = r.u(1)
    r.u(1)
    crop = [0, 0, 0, 0]
    if r.u(1):
        crop = [r.ue(), r.ue(), r.ue(), r.ue()]
    out["mb_count"] = mb_w * mb_h
    out["width"] = mb_w * 16 - 2 * (crop[0] + crop[1])
    out["height"] = mb_h * 16 - 2 * (crop[2] + crop[3])
    return out


# --------------------------------------------------------------------------------------------
# PNG
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height"), [(1, 1), (7, 3), (64, 48), (300, 200), (17, 513), (640, 360)]
)
def test_png_decodes_to_exact_size(width: int, height: int) -> None:
    data = render_png("a lighthouse at dusk", width, height)
    w, h, rows = read_png(data)
    assert (w, h) == (width, height)
    assert len(rows) == height
    assert all(len(row) == width * 3 for row in rows)
    assert png_size(data) == (width, height)
    assert sniff_image(data) == ("png", width, height)


@settings(max_examples=30, deadline=None)
@given(
    prompt=st.text(max_size=60),
    width=st.integers(min_value=1, max_value=96),
    height=st.integers(min_value=1, max_value=96),
)
def test_png_any_prompt_and_size(prompt: str, width: int, height: int) -> None:
    w, h, rows = read_png(render_png(prompt, width, height))
    assert (w, h, len(rows)) == (width, height, height)


def test_png_is_deterministic_per_prompt() -> None:
    first = render_png("a koi pond in autumn", 256, 160)
    _media._render_png_cached.cache_clear()
    assert render_png("a koi pond in autumn", 256, 160) == first


def test_png_is_cached() -> None:
    assert render_png("cached prompt", 128, 128) is render_png("cached prompt", 128, 128)


@pytest.mark.parametrize(
    ("a", "b"),
    [("a cat", "a dog"), ("sunset", "sunset."), ("森林", "海洋"), ("", " x")],
)
def test_different_prompts_give_visibly_different_images(a: str, b: str) -> None:
    _, _, rows_a = read_png(render_png(a, 200, 150))
    _, _, rows_b = read_png(render_png(b, 200, 150))
    px_a = [p for row in rows_a for p in pixels(row)]
    px_b = [p for row in rows_b for p in pixels(row)]
    differing = sum(pa != pb for pa, pb in zip(px_a, px_b, strict=True))
    assert differing > 0.3 * len(px_a)


@pytest.mark.parametrize(
    "prompt",
    [
        "日本語のプロンプト、桜と富士山",
        "emoji 🎨🖌️ and accents: café naïve",
        "lone surrogate \ud800 here",
        "tabs\tand\nnewlines\r\n",
        "",
        "x" * 5000,
        "\x00nul",
    ],
)
def test_png_unicode_and_odd_prompts(prompt: str) -> None:
    w, h, _ = read_png(render_png(prompt, 320, 240))
    assert (w, h) == (320, 240)


def test_png_draws_caption() -> None:
    _, _, rows = read_png(render_png("HELLO WORLD", 480, 320))
    mask = caption_mask(rows)
    ink_rows = [row for row in mask if any(row)]
    # 7 font rows, each scaled up by at least one pixel.
    assert len(ink_rows) >= 7
    assert sum(sum(row) for row in mask) > 100


def test_caption_depends_on_text_only_and_boxes_non_ascii() -> None:
    def mask(prompt: str) -> list[list[bool]]:
        return caption_mask(read_png(render_png(prompt, 400, 300))[2])

    # Non-ASCII characters all become the same box glyph, so the ink pattern matches even
    # though colours and shapes differ between the prompts.
    assert mask("日本 ok") == mask("中國 ok")
    assert mask("AB") != mask("CD")
    assert _media._glyph("日") == _media._glyph("é") == _media._BOX_GLYPH
    assert _media._glyph("A") != _media._BOX_GLYPH


def test_font_covers_printable_ascii() -> None:
    glyphs = {chr(c): _media._glyph(chr(c)) for c in range(0x21, 0x7F)}
    assert all(len(g) == 5 and any(g) and max(g) < 0x80 for g in glyphs.values())
    assert _media._glyph(" ") == bytes(5)
    # Every printable character must be distinguishable from every other one.
    assert len(set(glyphs.values())) == len(glyphs)


@pytest.mark.parametrize(
    ("width", "height"), [(0, 10), (10, 0), (-1, 10), (16385, 1), (1, 16385), (100_000, 100)]
)
def test_png_rejects_bad_sizes(width: int, height: int) -> None:
    with pytest.raises(ValueError):
        render_png("x", width, height)


def test_png_rejects_non_int_sizes() -> None:
    with pytest.raises(TypeError):
        render_png("x", 10.0, 10)  # type: ignore[arg-type]


def test_png_size_rejects_other_data() -> None:
    with pytest.raises(ValueError):
        png_size(b"\xff\xd8\xff\xe0" + bytes(40))
    with pytest.raises(ValueError):
        png_size(PNG_SIGNATURE)


# --------------------------------------------------------------------------------------------
# sniff_image
# --------------------------------------------------------------------------------------------


def jpeg_header(width: int, height: int, sof: int = 0xC0) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + bytes(65)
    frame = (
        bytes((0xFF, sof))
        + struct.pack(">HBHHB", 17, 8, height, width, 3)
        + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    )
    dht = b"\xff\xc4" + struct.pack(">H", 4) + b"\x00\x00"
    # A fill byte before the frame header is legal and must be skipped.
    return b"\xff\xd8" + app0 + dqt + b"\xff" + frame + dht + b"\xff\xda\x00\x02"


def riff(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_sniff_png() -> None:
    assert sniff_image(render_png("p", 33, 21)) == ("png", 33, 21)


@pytest.mark.parametrize("sof", [0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCF])
def test_sniff_jpeg(sof: int) -> None:
    assert sniff_image(jpeg_header(1920, 1080, sof)) == ("jpeg", 1920, 1080)


def test_sniff_jpeg_without_frame_header() -> None:
    # Scan data starting before any SOF, and a header cut short, are both unknown.
    assert sniff_image(b"\xff\xd8\xff\xda\x00\x02") is None
    assert sniff_image(jpeg_header(10, 10)[:30]) is None


def test_sniff_webp_lossy() -> None:
    # Frame tag, start code, then 14-bit sizes whose top two bits are scaling flags.
    payload = b"\x30\x01\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", 640 | 0x4000, 480) + bytes(8)
    assert sniff_image(riff(b"VP8 ", payload)) == ("webp", 640, 480)


def test_sniff_webp_lossless() -> None:
    bits = (800 - 1) | ((600 - 1) << 14)
    payload = b"\x2f" + struct.pack("<I", bits) + bytes(8)
    assert sniff_image(riff(b"VP8L", payload)) == ("webp", 800, 600)


def test_sniff_webp_extended() -> None:
    payload = (
        b"\x10\x00\x00\x00" + (4000 - 1).to_bytes(3, "little") + (3000 - 1).to_bytes(3, "little")
    )
    assert sniff_image(riff(b"VP8X", payload)) == ("webp", 4000, 3000)


@pytest.mark.parametrize("version", [b"GIF87a", b"GIF89a"])
def test_sniff_gif(version: bytes) -> None:
    data = version + struct.pack("<HH", 300, 200) + b"\xf7\x00\x00"
    assert sniff_image(data) == ("gif", 300, 200)


def test_sniff_bmp() -> None:
    info = struct.pack("<IiiHH", 40, 123, -45, 1, 24) + bytes(24)  # negative: top-down rows
    data = b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 54) + info
    assert sniff_image(data) == ("bmp", 123, 45)
    core = struct.pack("<IHHHH", 12, 64, 32, 1, 24)
    data = b"BM" + struct.pack("<IHHI", 14 + len(core), 0, 0, 26) + core
    assert sniff_image(data) == ("bmp", 64, 32)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world",
        PNG_SIGNATURE + b"\x00\x00",
        b"RIFF\x04\x00\x00\x00WAVEfmt ",
        riff(b"VP8 ", bytes(12)),
        b"GIF8",
        b"\x00\x00\x00\x18ftypisom",
    ],
)
def test_sniff_unknown(data: bytes) -> None:
    assert sniff_image(data) is None


# --------------------------------------------------------------------------------------------
# MP4
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("frames", "fps"), [(121, 24), (241, 24)])
def test_mp4_info_reports_duration_size_and_frames(frames: int, fps: int) -> None:
    data = render_mp4("a paper boat on a river", frames=frames, fps=fps)
    info = mp4_info(data)
    assert info == Mp4Info(
        brand="isom",
        duration=pytest.approx(frames / fps),  # type: ignore[arg-type]
        width=320,
        height=180,
        frames=frames,
        codec="avc1",
    )
    assert info.fps == pytest.approx(fps)
    assert len(data) < 200_000


def test_mp4_other_sizes() -> None:
    info = mp4_info(render_mp4("x", width=640, height=360, frames=30, fps=30))
    assert (info.width, info.height, info.frames) == (640, 360, 30)
    assert info.duration == pytest.approx(1.0)
    tiny = mp4_info(render_mp4("x", width=2, height=2, frames=1, fps=1))
    assert (tiny.width, tiny.height, tiny.frames, tiny.duration) == (2, 2, 1, 1.0)


def test_mp4_box_tree_is_consistent() -> None:
    data = render_mp4("box tree")
    top = list(boxes(data, 0, len(data)))
    assert [kind for kind, _, _ in top] == [b"ftyp", b"moov", b"mdat"]
    assert sum(end - (start - 8) for _, start, end in top) == len(data)

    seen: set[bytes] = set()

    def walk(start: int, end: int) -> None:
        for kind, payload, box_end in boxes(data, start, end):
            seen.add(kind)
            if kind in CONTAINERS:
                walk(payload, box_end)

    walk(0, len(data))
    required = {
        b"ftyp", b"moov", b"mvhd", b"trak", b"tkhd", b"mdia", b"mdhd", b"hdlr", b"minf",
        b"vmhd", b"dinf", b"dref", b"stbl", b"stsd", b"stts", b"stss", b"stsc", b"stsz",
        b"stco", b"mdat",
    }  # fmt: skip
    assert required <= seen

    ftyp_start, ftyp_end = find(data, b"ftyp")
    compatible = data[ftyp_start + 8 : ftyp_end]
    assert {compatible[i : i + 4] for i in range(0, len(compatible), 4)} >= {b"isom", b"avc1"}


@pytest.mark.parametrize(("frames", "fps"), [(121, 24), (241, 24), (7, 30)])
def test_mp4_sample_tables(frames: int, fps: int) -> None:
    data = render_mp4("tables", frames=frames, fps=fps)
    sizes = stsz_sizes(data)
    assert len(sizes) == frames

    mdat_start, mdat_end = find(data, b"mdat")
    stco, _ = find(data, *STBL, b"stco")
    assert struct.unpack_from(">I", data, stco + 8)[0] == mdat_start
    assert sum(sizes) == mdat_end - mdat_start

    stts, _ = find(data, *STBL, b"stts")
    count, sample_count, delta = struct.unpack_from(">III", data, stts + 4)
    mdhd, _ = find(data, b"moov", b"trak", b"mdia", b"mdhd")
    timescale, duration = struct.unpack_from(">II", data, mdhd + 12)
    assert (count, sample_count) == (1, frames)
    assert duration == frames * delta
    assert delta / timescale == pytest.approx(1 / fps)

    stss, _ = find(data, *STBL, b"stss")
    assert struct.unpack_from(">II", data, stss + 4) == (1, 1)  # only the first frame is key
    stsc, _ = find(data, *STBL, b"stsc")
    assert struct.unpack_from(">IIII", data, stsc + 4) == (1, 1, frames, 1)


def test_mp4_avcc_and_first_sample() -> None:
    data = render_mp4("avc")
    sps, pps, length_size = avcc(data)
    assert sps[0] & 0x1F == 7
    assert pps[0] & 0x1F == 8
    assert length_size == 4

    fields = parse_sps(sps)
    assert fields["profile"] == 66  # Baseline
    assert fields["frame_mbs_only"] == 1
    assert (fields["width"], fields["height"]) == (320, 180)

    frames = samples(data)
    for index, sample in enumerate(frames):
        (length,) = struct.unpack_from(">I", sample)
        assert length == len(sample) - 4, "each sample holds exactly one NAL unit"
        assert sample[4] & 0x1F == (5 if index == 0 else 1)

    # The IDR slice codes its first macroblock as I_PCM (mb_type 25) and carries 384 raw
    # samples per macroblock.
    r = BitReader(unescape(frames[0][4:]))
    assert (r.ue(), r.ue(), r.ue()) == (0, 7, 0)
    assert r.u(fields["log2_max_frame_num"]) == 0
    r.ue()  # idr_pic_id
    r.u(2)
    r.se()
    assert r.ue() == 1  # deblocking disabled
    assert r.ue() == 25
    assert len(frames[0]) > fields["mb_count"] * 384


def test_mp4_p_frames_skip_every_macroblock() -> None:
    data = render_mp4("skip", frames=5)
    fields = parse_sps(avcc(data)[0])
    for frame_num, sample in enumerate(samples(data)[1:], start=1):
        r = BitReader(unescape(sample[4:]))
        assert (r.ue(), r.ue(), r.ue()) == (0, 5, 0)
        assert r.u(fields["log2_max_frame_num"]) == frame_num
        r.u(3)  # override / list modification / adaptive marking flags
        r.se()
        r.ue()
        assert r.ue() == fields["mb_count"]  # mb_skip_run covers the whole picture
        assert r.u(1) == 1  # then the rbsp stop bit


def test_mp4_nal_units_use_emulation_prevention() -> None:
    data = render_mp4("escape", frames=40)
    sps, pps, _ = avcc(data)
    for nal in [sps, pps, *(s[4:] for s in samples(data))]:
        assert re.search(b"\x00\x00[\x00-\x02]", nal) is None
        assert nal[-1] != 0


def test_mp4_is_deterministic_cached_and_prompt_dependent() -> None:
    first = render_mp4("deterministic")
    assert render_mp4("deterministic") is first
    _media._render_mp4_cached.cache_clear()
    assert render_mp4("deterministic") == first
    assert samples(render_mp4("another prompt"))[0] != samples(first)[0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 321},
        {"height": 181},
        {"width": 319, "height": 179},
        {"width": 0},
        {"height": 4098},
        {"frames": 0},
        {"fps": 0},
    ],
)
def test_mp4_rejects_bad_parameters(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        render_mp4("x", **kwargs)


def test_mp4_info_handles_64_bit_box_sizes() -> None:
    data = render_mp4("large size")
    mdat_start, mdat_end = find(data, b"mdat")
    payload = data[mdat_start:mdat_end]
    rebuilt = data[: mdat_start - 8] + struct.pack(">I4sQ", 1, b"mdat", 16 + len(payload)) + payload
    assert mp4_info(rebuilt).frames == 121


@pytest.mark.parametrize(
    "data",
    [b"", b"not an mp4 at all", b"\x00\x00\x00\x08free", render_png("x", 8, 8)],
)
def test_mp4_info_rejects_other_data(data: bytes) -> None:
    with pytest.raises(ValueError):
        mp4_info(data)


def test_mp4_info_rejects_truncated_file() -> None:
    data = render_mp4("truncated")
    with pytest.raises(ValueError):
        mp4_info(data[: len(data) // 3])
