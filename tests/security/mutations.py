"""Hostile image bytes: real photos in every accepted format, then broken on purpose.

`seeds()` encodes a real photo (scaled small) in every format and variant we accept;
`mutate()` breaks one with a mutation drawn from `MUTATIONS`: generic ones (bit flips,
overwrites, truncation, slices duplicated, deleted or spliced in from another file) and
structural ones that a plain byte fuzzer would rarely hit, because each needs a valid
checksum or offset: header dimensions, huge metadata, zlib bombs. Every mutation takes a
random.Random, so hypothesis (which draws its seed) and a fixed seed drive the same code.
"""

import functools
import io
import struct
import zlib
from collections.abc import Mapping

import numpy as np
from PIL import Image

from tests.conftest import eval_photo

# Header values chosen to hit the edges: zero, one, byte and word limits, the sign bit, and
# sizes just under and over the 40 MP limit.
INTERESTING = [0, 1, 2, 3, 7, 255, 256, 4095, 6000, 6324, 6325, 32767, 32768, 65535, 65536]
INTERESTING += [2**31 - 1, 2**31, 2**32 - 1]
# A zlib stream that inflates to 64 MiB of zeros from about 64 KiB.
BOMB_BYTES = 64 * 1024 * 1024


@functools.cache
def photo(size=(40, 32)):
    """The astronaut, small: every seed is a real photo, decoded in milliseconds."""
    with Image.open(eval_photo("photos/astronaut.jpg")) as image:
        return image.convert("RGB").resize(size, Image.BILINEAR)


def _encode(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _frames(image):
    return [image, image.transpose(Image.FLIP_LEFT_RIGHT)]


@functools.cache
def seeds():
    """{(format, variant): bytes}: every format we accept, in the variants phones and
    cameras produce (progressive, CMYK, 16-bit, palette, animated, compressed TIFF...)."""
    rgb = photo()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°, as a phone held upright writes it
    rgba = rgb.copy()
    rgba.putalpha(128)
    grey16 = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    animated = _frames(rgb)
    return {
        ("JPEG", "baseline"): _encode(rgb, "JPEG", quality=85),
        ("JPEG", "progressive"): _encode(rgb, "JPEG", progressive=True),
        ("JPEG", "exif-rotated"): _encode(rgb, "JPEG", exif=exif),
        ("JPEG", "cmyk"): _encode(rgb.convert("CMYK"), "JPEG"),
        ("JPEG", "grey"): _encode(rgb.convert("L"), "JPEG"),
        ("JPEG", "icc"): _encode(rgb, "JPEG", icc_profile=b"not really a profile" * 50),
        ("PNG", "rgb"): _encode(rgb, "PNG"),
        ("PNG", "rgba"): _encode(rgba, "PNG"),
        ("PNG", "palette-transparent"): _encode(rgb.convert("P"), "PNG", transparency=0),
        ("PNG", "16-bit"): _encode(grey16, "PNG"),
        ("PNG", "1-bit"): _encode(rgb.convert("1"), "PNG"),
        ("PNG", "apng"): _encode(animated[0], "PNG", save_all=True, append_images=animated[1:]),
        ("WEBP", "lossy"): _encode(rgb, "WEBP", quality=80),
        ("WEBP", "lossless"): _encode(rgba, "WEBP", lossless=True),
        ("WEBP", "animated"): _encode(animated[0], "WEBP", save_all=True, append_images=animated[1:]),
        ("GIF", "still"): _encode(rgb, "GIF"),
        ("GIF", "animated"): _encode(animated[0], "GIF", save_all=True, append_images=animated[1:], loop=0),
        ("BMP", "rgb"): _encode(rgb, "BMP"),
        ("BMP", "palette"): _encode(rgb.convert("P"), "BMP"),
        ("BMP", "1-bit"): _encode(rgb.convert("1"), "BMP"),
        ("TIFF", "raw"): _encode(rgb, "TIFF"),
        ("TIFF", "lzw"): _encode(rgb, "TIFF", compression="tiff_lzw"),
        ("TIFF", "deflate"): _encode(rgba, "TIFF", compression="tiff_adobe_deflate"),
        ("TIFF", "packbits"): _encode(rgb.convert("L"), "TIFF", compression="packbits"),
        ("TIFF", "jpeg"): _encode(rgb, "TIFF", compression="jpeg"),
        ("TIFF", "16-bit"): _encode(grey16, "TIFF"),
        ("TIFF", "float"): _encode(rgb.convert("F"), "TIFF"),
        ("TIFF", "cmyk"): _encode(rgb.convert("CMYK"), "TIFF"),
        ("TIFF", "multipage"): _encode(animated[0], "TIFF", save_all=True, append_images=animated[1:]),
        ("HEIF", "iphone"): _encode(rgb, "HEIF", quality=80),
        ("HEIF", "rgba"): _encode(rgba, "HEIF", quality=80),
        ("HEIF", "10-bit"): _encode(grey16.convert("I;16"), "HEIF", quality=80),
        ("AVIF", "lossy"): _encode(rgb, "AVIF", quality=70),
        ("AVIF", "exif-rotated"): _encode(rgb, "AVIF", exif=exif.tobytes()),
        ("AVIF", "rgba"): _encode(rgba, "AVIF"),
    }


def _offset(data, rng):
    return rng.randrange(len(data)) if data else 0


# --- Generic mutations: no knowledge of the format ---------------------------------------


def bit_flips(data, rng, fmt):
    out = bytearray(data)
    for _ in range(rng.randint(1, 32)):
        position = _offset(out, rng)
        out[position] ^= 1 << rng.randrange(8)
    return bytes(out)


def overwrite(data, rng, fmt):
    out = bytearray(data)
    position = _offset(out, rng)
    run = rng.randbytes(rng.randint(1, 64))
    out[position : position + len(run)] = run
    return bytes(out)


def interesting_int(data, rng, fmt):
    """One 16- or 32-bit field anywhere set to an edge value: offsets and lengths go wild."""
    out = bytearray(data)
    width, order = rng.choice([(2, "<H"), (2, ">H"), (4, "<I"), (4, ">I")])
    value = rng.choice(INTERESTING) & (0xFFFF if width == 2 else 0xFFFFFFFF)
    position = min(_offset(out, rng), max(0, len(out) - width))
    out[position : position + width] = struct.pack(order, value)
    return bytes(out)


def truncate(data, rng, fmt):
    return data[: rng.randrange(len(data))] if data else data


def delete_slice(data, rng, fmt):
    start = _offset(data, rng)
    return data[:start] + data[start + rng.randint(1, 256) :]


def duplicate_slice(data, rng, fmt):
    """A run of the file copied elsewhere: chunks and segments repeated, offsets shifted."""
    start = _offset(data, rng)
    piece = data[start : start + rng.randint(1, 512)]
    at = _offset(data, rng)
    return data[:at] + piece * rng.randint(1, 8) + data[at:]


def splice_foreign(data, rng, fmt):
    """The head of this file on the tail of another file (any format)."""
    other = rng.choice(list(seeds().values()))
    return data[: _offset(data, rng)] + other[_offset(other, rng) :]


def random_insert(data, rng, fmt):
    at = _offset(data, rng)
    return data[:at] + rng.randbytes(rng.randint(1, 1024)) + data[at:]


# --- Structural mutations: a field that matters, with the checksums kept right ------------


def _png_chunks(data):
    """[(offset, type, payload)] of a PNG's chunks, as far as they parse."""
    chunks, position = [], 8
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunks.append((position, kind, data[position + 8 : position + 8 + length]))
        position += 12 + length
    return chunks


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_replace(data, offset, kind, payload):
    (length,) = struct.unpack(">I", data[offset : offset + 4])
    return data[:offset] + png_chunk(kind, payload) + data[offset + 12 + length :]


def _png_insert_before_idat(data, chunk):
    idat = next((o for o, kind, _ in _png_chunks(data) if kind == b"IDAT"), 33)
    return data[:idat] + chunk + data[idat:]


def _dimension(rng):
    return rng.choice(INTERESTING) if rng.random() < 0.7 else rng.randrange(1, 70000)


def _png_dimensions(data, rng):
    for offset, kind, payload in _png_chunks(data):
        if kind == b"IHDR" and len(payload) == 13:
            fields = bytearray(payload)
            field = rng.choice(["width", "height", "both", "depth", "colour", "interlace"])
            if field in ("width", "both"):
                fields[0:4] = struct.pack(">I", _dimension(rng))
            if field in ("height", "both"):
                fields[4:8] = struct.pack(">I", _dimension(rng))
            if field == "depth":
                fields[8] = rng.choice([0, 1, 2, 4, 8, 16, 32, 255])
            if field == "colour":
                fields[9] = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 255])
            if field == "interlace":
                fields[12] = rng.choice([1, 2, 255])
            return _png_replace(data, offset, kind, bytes(fields))
    return data


def _jpeg_dimensions(data, rng):
    """Height and width in the frame header (SOF0..SOF15, less DHT, JPG and DAC)."""
    for position in range(len(data) - 9):
        marker = data[position + 1]
        if data[position] == 0xFF and 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            out = bytearray(data)
            which = rng.choice([5, 7, 5, 7, 4, 9])  # height, width, or precision / components
            if which in (4, 9):
                out[position + which] = rng.choice([0, 1, 3, 4, 8, 12, 16, 255])
            else:
                out[position + which : position + which + 2] = struct.pack(">H", _dimension(rng) & 0xFFFF)
            return bytes(out)
    return data


def _gif_dimensions(data, rng):
    out = bytearray(data)
    if rng.random() < 0.5:  # the logical screen
        out[6:10] = struct.pack("<HH", _dimension(rng) & 0xFFFF, _dimension(rng) & 0xFFFF)
        return bytes(out)
    descriptor = data.find(b"\x2c", 13)  # near enough: the first image descriptor's mark
    if descriptor > 0 and descriptor + 9 <= len(data):
        field = descriptor + 1 + 2 * rng.randrange(4)  # left, top, width or height
        out[field : field + 2] = struct.pack("<H", _dimension(rng) & 0xFFFF)
    return bytes(out)


def _bmp_dimensions(data, rng):
    out = bytearray(data)
    field = rng.choice(["width", "height", "bpp", "compression", "colours", "header size"])
    if field in ("width", "height"):
        value = _dimension(rng) * rng.choice([1, -1])
        out[18 if field == "width" else 22 : (18 if field == "width" else 22) + 4] = struct.pack(
            "<i", max(-(2**31), min(2**31 - 1, value))
        )
    elif field == "bpp":
        out[28:30] = struct.pack("<H", rng.choice([0, 1, 2, 4, 8, 15, 16, 24, 32, 64, 65535]))
    elif field == "compression":
        out[30:34] = struct.pack("<I", rng.choice([0, 1, 2, 3, 4, 5, 6, 11, 2**31]))
    elif field == "colours":
        out[46:50] = struct.pack("<I", rng.choice(INTERESTING))
    else:
        out[14:18] = struct.pack("<I", rng.choice([0, 12, 16, 40, 52, 56, 64, 108, 124, 2**31]))
    return bytes(out)


# Tags whose values size the image and place its data: width, length, bits per sample,
# compression, photometric, strip offsets, samples per pixel, rows per strip, strip byte
# counts, planar configuration, predictor, extra samples, sample format.
TIFF_TAGS = [256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 338, 339]


def _tiff_dimensions(data, rng):
    order = "<" if data[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(order + "I", data[4:8])
        (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    except struct.error:
        return data
    entries = [ifd + 2 + 12 * index for index in range(count) if ifd + 14 + 12 * index <= len(data)]
    wanted = [e for e in entries if struct.unpack(order + "H", data[e : e + 2])[0] in TIFF_TAGS]
    if not wanted:
        return data
    entry = rng.choice(wanted)
    out = bytearray(data)
    field = rng.random()
    if field < 0.2:  # the entry's type: a float or a fraction where an integer belongs
        out[entry + 2 : entry + 4] = struct.pack(order + "H", rng.randint(0, 13))
    elif field < 0.4:  # the entry's count: more values than the file holds
        out[entry + 4 : entry + 8] = struct.pack(order + "I", rng.choice(INTERESTING))
    else:
        out[entry + 8 : entry + 12] = struct.pack(order + "I", rng.choice(INTERESTING))
    return bytes(out)


def _webp_dimensions(data, rng):
    out = bytearray(data)
    kind = data[12:16]
    if kind == b"VP8X":
        field = rng.choice([24, 27])  # canvas width - 1, height - 1 (24-bit)
        out[field : field + 3] = struct.pack("<I", _dimension(rng))[:3]
    elif kind == b"VP8L" and len(data) > 25:
        bits = struct.unpack("<I", data[21:25])[0]
        bits = (bits & ~0x3FFF) | (_dimension(rng) & 0x3FFF) if rng.random() < 0.5 else bits
        bits = (bits & ~(0x3FFF << 14)) | ((_dimension(rng) & 0x3FFF) << 14) if rng.random() < 0.5 else bits
        out[21:25] = struct.pack("<I", bits)
    elif kind == b"VP8 " and len(data) > 30:
        field = rng.choice([26, 28])
        out[field : field + 2] = struct.pack("<H", _dimension(rng) & 0xFFFF)
    return bytes(out)


def _ispe_dimensions(data, rng):
    """HEIF and AVIF (ISO BMFF): an image's size is its `ispe` box (version and flags, then
    width and height, 32 bits each); libheif and libavif check it against the coded image."""
    out = bytearray(data)
    boxes = [i for i in range(len(data)) if data.startswith(b"ispe", i)]
    if boxes:
        field = rng.choice(boxes) + 8 + rng.choice([0, 4])
        out[field : field + 4] = struct.pack(">I", _dimension(rng))
    return bytes(out)


DIMENSIONS = {
    "PNG": _png_dimensions,
    "JPEG": _jpeg_dimensions,
    "GIF": _gif_dimensions,
    "BMP": _bmp_dimensions,
    "TIFF": _tiff_dimensions,
    "WEBP": _webp_dimensions,
    "HEIF": _ispe_dimensions,
    "AVIF": _ispe_dimensions,
}


def header_dimensions(data, rng, fmt):
    """Width, height, depth or layout fields of the format's own header."""
    return DIMENSIONS[fmt](data, rng)


@functools.cache
def _bomb(size=BOMB_BYTES):
    return zlib.compress(b"\0" * size, 9)


def _jpeg_segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


# EXIF tags worth lying about: orientation, the EXIF, GPS and interoperability IFD
# pointers, and the image's own width and height.
EXIF_TAGS = [0x0112, 0x8769, 0x8825, 0xA005, 0x0100, 0x0101]


def exif_block(entries, next_ifd=0):
    """b"Exif\0\0" and a little-endian TIFF IFD of (tag, type, count, 4-byte value)."""
    body = struct.pack("<2sHI", b"II", 42, 8) + struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack("<HHI", tag, kind, count) + value
    return b"Exif\0\0" + body + struct.pack("<I", next_ifd)


def _exif_payload(rng):
    """An EXIF block: a real one with a wild orientation, or an IFD that lies.

    The lying one keeps a valid rotation first, so exif_transpose() rotates the image and
    writes the rest of the block back, and then entries of any type and count pointing
    anywhere, the IFD itself included (a loop).
    """
    if rng.random() < 0.4:
        exif = Image.Exif()
        exif[0x0112] = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 65535])
        return exif.tobytes()
    entries = [(0x0112, 3, 1, struct.pack("<HH", rng.randint(2, 8), 0))]
    for _ in range(rng.randint(1, 8)):
        value = struct.pack("<I", rng.choice([0, 8, 2**31] + INTERESTING))
        entries.append((rng.choice(EXIF_TAGS), rng.randint(0, 13), rng.choice([0, 1, 2, 4, 65535]), value))
    return exif_block(entries, next_ifd=rng.choice([0, 0, 8]))


def huge_metadata(data, rng, fmt):
    """Metadata a decoder must skip or bound: big text, EXIF, ICC, comments, bombs."""
    size = rng.choice([1024, 65533, 1024 * 1024, 4 * 1024 * 1024])
    if fmt == "PNG":
        kind, payload = rng.choice(
            [
                (b"tEXt", b"Comment\0" + b"A" * size),
                (b"zTXt", b"Comment\0\0" + _bomb()),
                (b"iTXt", b"XML:com.adobe.xmp\0\x01\0\0\0" + _bomb()),
                (b"iCCP", b"icc\0\0" + _bomb()),
                (b"eXIf", _exif_payload(rng)[6:]),
                (b"sPLT", b"pal\0\x08" + b"\xff" * size),
            ]
        )
        return _png_insert_before_idat(data, png_chunk(kind, payload))
    if fmt == "JPEG":
        marker, payload = rng.choice(
            [
                (0xE1, _exif_payload(rng)),
                (0xE2, b"ICC_PROFILE\0" + bytes([rng.randint(0, 3), rng.randint(0, 3)]) + b"\xaa" * 65000),
                (0xFE, b"C" * 65000),
                (0xED, b"Photoshop 3.0\0" + rng.randbytes(60000)),
            ]
        )
        segments = _jpeg_segment(marker, payload[:65533]) * max(1, size // 65533)
        return data[:2] + segments + data[2:]
    if fmt == "GIF":
        comment = b"\x21\xfe" + (b"\xff" + b"C" * 255) * max(1, size // 256) + b"\0"
        return data[:13] + comment + data[13:] if not data[10] & 0x80 else _gif_after_palette(data, comment)
    if fmt == "WEBP" and data[12:16] == b"VP8X":
        kind = rng.choice([b"EXIF", b"ICCP", b"XMP "])
        payload = _exif_payload(rng)[6:] if kind == b"EXIF" else rng.randbytes(min(size, 65536))
        chunk = kind + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)
        out = data + chunk
        return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]
    return random_insert(data, rng, fmt)  # BMP, TIFF and plain WebP have no such place


def _gif_after_palette(data, block):
    palette = 3 * 2 ** ((data[10] & 0x07) + 1)
    return data[: 13 + palette] + block + data[13 + palette :]


def zlib_bomb(data, rng, fmt):
    """A PNG whose pixel data inflates far past what its header (possibly lied) needs."""
    if fmt != "PNG":
        return huge_metadata(data, rng, fmt)
    if rng.random() < 0.5:
        data = _png_dimensions(data, rng)
    chunks = _png_chunks(data)
    head = b"".join(data[o : o + 12 + len(p)] for o, kind, p in chunks if kind in (b"IHDR", b"PLTE", b"tRNS"))
    return data[:8] + head + png_chunk(b"IDAT", _bomb()) + png_chunk(b"IEND", b"")


GENERIC = [bit_flips, overwrite, interesting_int, truncate, delete_slice, duplicate_slice, splice_foreign]
GENERIC += [random_insert]
STRUCTURAL = [header_dimensions, header_dimensions, huge_metadata, zlib_bomb]
MUTATIONS = GENERIC + STRUCTURAL


def mutate(seed_key, mutation, rng, rounds=1):
    """Seed `seed_key` broken by `mutation`, then `rounds - 1` more random mutations."""
    fmt = seed_key[0]
    data = mutation(seeds()[seed_key], rng, fmt)
    for _ in range(rounds - 1):
        data = rng.choice(MUTATIONS)(data, rng, fmt)
    return data


# --- Inputs that once crashed decode_image (a 500 in the API, internal_error in a worker) --


def png(width, height, colour_type, depth, rows=True):
    """A PNG of width x height, all zero pixels; rows=False leaves its pixel data empty."""
    channels = {0: 1, 2: 3, 6: 4}[colour_type]
    raw = (b"\0" + bytes(-(-width * channels * depth // 8))) * height if rows else b""
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    idat = png_chunk(b"IDAT", zlib.compress(raw, 6))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + idat + png_chunk(b"IEND", b"")


def _tiff_retyped(tag, kind):
    """The raw TIFF seed with one IFD entry's type changed (its bytes left as they are)."""
    data = bytearray(seeds()[("TIFF", "raw")])
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        if struct.unpack(order + "H", data[entry : entry + 2])[0] == tag:
            data[entry + 2 : entry + 4] = struct.pack(order + "H", kind)
    return bytes(data)


class _MadeOnUse(Mapping):
    """{name: bytes} whose names are known at once and whose bytes are made when asked for."""

    def __init__(self, makers):
        self._makers = makers

    def __getitem__(self, name):
        return self._makers[name]()

    def __iter__(self):
        return iter(self._makers)

    def __len__(self):
        return len(self._makers)


def regressions():
    """{name: bytes}: each must be refused with a 4xx, found by the fuzzers here.

    The names parametrize tests at collection; most of the bytes are made from the shared
    photo, read only when a test asks for them. Where ../shared is absent those tests skip,
    saying why (eval_photo), instead of the whole run stopping at collection.
    """
    rotated = [(0x0112, 3, 1, struct.pack("<HH", 6, 0))]
    return _MadeOnUse(
        {
            # exif_transpose() writes the EXIF back and cannot pack text as a LONG: struct.error.
            "JPEG rotated by EXIF whose ImageWidth is text": lambda: _encode(
                photo(), "JPEG", exif=exif_block(rotated + [(0x0100, 2, 2, b"\x08\0\0\0")])
            ),
            # load() seeks to each strip offset, which must be an integer: TypeError.
            "TIFF whose StripOffsets are a RATIONAL": lambda: _tiff_retyped(273, 5),
            "TIFF whose StripOffsets are a DOUBLE": lambda: _tiff_retyped(273, 12),
            # Pillow's line buffer refuses a row of 40 M 64-bit pixels: MemoryError.
            "16-bit RGBA PNG, 40 M x 1": lambda: png(40_000_000, 1, 6, 16, rows=False),
        }
    )
