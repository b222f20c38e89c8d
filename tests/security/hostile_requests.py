"""Hostile requests to the upload endpoints, built byte by byte.

Django's test client cleans up what it sends (it keeps only a filename's base name, counts
Content-Length itself, always writes a well-formed multipart body), so these requests are
written by hand: traversal and NUL filenames, duplicate and giant fields, wrong or lying
content types and lengths, broken multipart framing, JSON and base64 that is not quite.
Each is sent with `client.generic(method, path + query, body, content_type, **environ)`.
"""

import base64
import json
from dataclasses import dataclass, field, replace

BOUNDARY = "hostile-boundary-7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


@dataclass
class Hostile:
    name: str
    body: bytes
    content_type: str
    environ: dict = field(default_factory=dict)  # HTTP_* headers, CONTENT_LENGTH lies
    query: str = ""
    method: str = "POST"


def part(name, value, filename=None, content_type=None, headers=b""):
    """One multipart part; `value` is bytes or str, `filename` any str (NUL included)."""
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"Content-Disposition: {disposition}\r\n".encode("utf-8", "surrogateescape")
    if content_type:
        head += f"Content-Type: {content_type}\r\n".encode()
    body = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    return head + headers + b"\r\n" + body


def multipart(parts, boundary=BOUNDARY, closed=True):
    marker = b"--" + boundary.encode()
    body = b"".join(marker + b"\r\n" + p + b"\r\n" for p in parts)
    return body + (marker + b"--\r\n" if closed else b"")


def form(parts, name, **options):
    return Hostile(name, multipart(parts), MULTIPART, **options)


def image_part(data, filename="photo.jpg"):
    return part("image", data, filename, "application/octet-stream")


def multipart_upload(data, filename="photo.jpg", name="upload", **fields):
    """The ordinary upload a client sends, for the mutated images."""
    parts = [image_part(data, filename)] + [part(k, v) for k, v in fields.items()]
    return form(parts, name)


def json_upload(data, name="upload"):
    return Hostile(name, json.dumps({"image": base64.b64encode(data).decode()}).encode(), "application/json")


# --- Shapes every multipart endpoint (jobs, MAX predict) gets ------------------------------

FILENAMES = [
    "../../../../etc/passwd.png",
    "..\\..\\..\\windows\\win.ini.png",
    "/etc/shadow.png",
    "photo\x00.png",
    "photo.png\x00.exe",
    "\u202egnp.exe",  # right-to-left override: shows as "exe.png"
    "ｐｈｏｔｏ.png",
    "😀🔥.png",
    "CON.png",
    "x" * 5000 + ".png",
    "",
    ".",
    "..",
    "photo.png;",
    "%2e%2e%2fphoto.png",
    "\udcff\udcfe.png",  # bytes that are not UTF-8
    'quo"te.png',
    "new\nline.png",
]

CONTENT_TYPES = [
    "text/plain",
    "image/png",
    "application/octet-stream",
    "application/xml",
    "multipart/form-data",  # no boundary
    "multipart/form-data; boundary=",
    f"multipart/form-data; boundary={'b' * 300}",
    "multipart/mixed; boundary=" + BOUNDARY,
    "multipart/form-data; boundary=" + BOUNDARY + "; charset=bogus",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=bogus",
    "application/json; charset=bogus",
    "application/json; charset=utf-16",
    "",
]

CONTENT_LENGTHS = ["0", "10", "-1", "abc", "1e3", " 42", "99999999999999999999", "0x10"]


def multipart_shapes(image, task_fields):
    """Request shapes around a valid image: only the framing and the fields are hostile.

    `task_fields` are the fields that make the request otherwise valid ({"task": ...}
    for jobs, {} for MAX).
    """
    good = [image_part(image)] + [part(k, v) for k, v in task_fields.items()]
    shapes = [form([image_part(image, name)] + good[1:], f"filename {name[:20]!r}") for name in FILENAMES]
    shapes += [
        form([part("image", image, "photo.jpg", "text/html")] + good[1:], "image declared text/html"),
        form([part("image", image)] + good[1:], "image as a plain field"),
        form([image_part(image), image_part(image, "second.jpg")] + good[1:], "two images"),
        form(good + good[1:], "every field twice"),
        form(good + [part("model", "m" * 100_000)], "100 KB model name"),
        form(good + [part("image", "x" * 1_000_000)], "1 MB field named image"),
        form(good + [part(f"f{i}", "x") for i in range(1200)], "1200 fields"),
        form(good + [image_part(b"x", f"{i}.jpg") for i in range(120)], "120 files"),
        form([image_part(image, "a" * 200_000)] + good[1:], "200 KB filename"),
        form(good + [part("x", "y", headers=b"X-Long: " + b"h" * 100_000 + b"\r\n")], "100 KB part header"),
        form([b"Content-Type: text/plain\r\n\r\nno disposition"] + good, "part without a disposition"),
        form([b"garbage with no headers"] + good, "part with no header block"),
        Hostile("unclosed body", multipart(good, closed=False), MULTIPART),
        Hostile("wrong boundary", multipart(good), "multipart/form-data; boundary=other"),
        Hostile("body of boundaries", (b"--" + BOUNDARY.encode() + b"\r\n") * 10_000, MULTIPART),
        Hostile("empty body", b"", MULTIPART),
        Hostile("raw image bytes", image, "image/jpeg"),
        Hostile("urlencoded", b"image=%ff%00&task=semantic&%zz=1", "application/x-www-form-urlencoded"),
        Hostile(
            "json with base64 image",
            json.dumps({"image": base64.b64encode(image).decode(), **task_fields}).encode(),
            "application/json",
        ),
        Hostile("json nested 100k deep", b"[" * 100_000, "application/json"),
        Hostile("json NaN", b'{"task": NaN, "image": Infinity}', "application/json"),
        Hostile("json not utf-8", b'{"task": "\xff\xfe"}', "application/json"),
        Hostile("json with BOM", b'\xef\xbb\xbf{"task": "semantic"}', "application/json"),
    ]
    shapes += [Hostile(f"content type {c!r}", multipart(good), c) for c in CONTENT_TYPES]
    shapes += [
        Hostile(f"Content-Length {n!r}", multipart(good), MULTIPART, {"CONTENT_LENGTH": n})
        for n in CONTENT_LENGTHS
    ]
    shapes += [
        Hostile(f"{method} instead of POST", multipart(good), MULTIPART, method=method)
        for method in ("PUT", "PATCH", "DELETE")
    ]
    return shapes


# --- Shapes for POST /api/v1/jobs/ alone: its options, wait and idempotency key -------------

OPTION_VALUES = {
    "task": ["", "SEMANTIC", "semantic\x00", "semantic " * 1000, "instance,semantic"],
    "model": ["", " ", "../deeplabv3_mnv2_pascal", "deeplabv3_mnv2_pascal\x00", "ｄｅｅｐｌａｂ", "x" * 65],
    "classes": ["", ",", " , ", "person\x00", "PERSON", "person," * 10_000, "🐈"],
    "score_threshold": ["-1", "NaN", "nan", "inf", "-inf", "1e309", "-0", "1e-400", "0x1p-2", " ", "½", "١"],
    "webhook_url": [
        "file:///etc/passwd",
        "http://127.0.0.1:6379/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0x7f000001/",
        "http://[::1]/",
        "javascript:alert(1)",
        "http://user:pass@10.0.0.1/",
        "http://" + "a" * 3000,
        "http:// /",
        "",
    ],
    "webhook_events": ["", "exploded", "completed," * 100, "running\x00"],
}


def job_shapes(image):
    shapes = multipart_shapes(image, {"task": "semantic"})
    for name, values in OPTION_VALUES.items():
        task = "instance" if name == "score_threshold" else "semantic"
        for value in values:
            fields = {"task": task, name: value} if name != "task" else {"task": value}
            shapes.append(
                form([image_part(image)] + [part(k, v) for k, v in fields.items()], f"{name}={value[:20]!r}")
            )
    good = multipart([image_part(image), part("task", "semantic")])
    for wait in ["-1", "1e3", "NaN", "٣", "99999999999999999999", "", "0x1"]:
        shapes.append(Hostile(f"?wait={wait!r}", good, MULTIPART, query=f"?wait={wait}"))
    for prefer in ["wait=99999999999999999999", "wait=", "wait=-5", "respond-async, wait=" + "9" * 10_000]:
        shapes.append(Hostile(f"Prefer {prefer[:24]!r}", good, MULTIPART, {"HTTP_PREFER": prefer}))
    for key in ["ключ", "k" * 300, "a\x00b", " ", "\t"]:
        shapes.append(
            Hostile(f"Idempotency-Key {key[:12]!r}", good, MULTIPART, {"HTTP_IDEMPOTENCY_KEY": key})
        )
    return shapes


def max_shapes(image):
    shapes = multipart_shapes(image, {})
    for model in ["full", "yolov8n_seg_coco", "../../etc/passwd", "x" * 100, "", "mobile\x00"]:
        shapes.append(form([image_part(image), part("model", model)], f"model={model[:20]!r}"))
    return shapes


# --- Shapes for remove.bg's and rembg's endpoints: their own field names and options -------


def renamed(shapes, field_name):
    """The same shapes for an endpoint whose image field has another name."""
    old, new = b'name="image"', f'name="{field_name}"'.encode()
    return [replace(shape, body=shape.body.replace(old, new)) for shape in shapes]


REMOVEBG_VALUES = {
    "size": ["", "huge", "full\x00", "4K"],
    "type": ["", "unicorn", "person,car", "PERSON"],
    "format": ["", "gif", "zip\x00", "webp"],
    "channels": ["", "rgb", "alpha" * 100],
    "bg_color": ["", "nope", "#12345", "ff00ff00ff", "rgb(1,2,3)"],
    "crop": ["maybe", ""],
    "crop_margin": ["-5", "200%", "10em", "1" * 30],
    "roi": ["0 0 10 10", "garbage"],
    "scale": ["50%", "-1%"],
    "position": ["left", "900% 900%"],
    "image_url": ["file:///etc/passwd", "http://user:pw@example.com/a.jpg", "not a url"],
    "image_file_b64": ["!!!!", ""],
}
REMBG_VALUES = {
    "model": ["", "x" * 100, "../u2net"],
    "a": ["maybe", "2"],
    "af": ["-1", "256", "NaN"],
    "ab": ["1e309", "x"],
    "ae": ["-3", ""],
    "om": ["perhaps"],
    "bgc": ["1,2", "300,0,0,0", "nope", "1,2,3,4,5"],
}


def option_shapes(image, field_name, values):
    return [
        form(
            [part(field_name, image, "photo.jpg", "application/octet-stream"), part(name, value)],
            f"{name}={value[:20]!r}",
        )
        for name, options in values.items()
        for value in options
    ]


def removebg_shapes(image):
    return renamed(multipart_shapes(image, {}), "image_file") + option_shapes(
        image, "image_file", REMOVEBG_VALUES
    )


def rembg_shapes(image):
    return renamed(multipart_shapes(image, {}), "file") + option_shapes(image, "file", REMBG_VALUES)


# --- Shapes for the PixelLib endpoints: JSON with a base64 image ---------------------------


def pixellib_shapes(image):
    encoded = base64.b64encode(image).decode()
    lines = "\r\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64))
    images = {
        "not base64": "!!!!",
        "base64 of nothing": "",
        "padding only": "====",
        "data URL": "data:image/jpeg;base64," + encoded,
        "data URL, 500-char prefix": "data:" + "x" * 500 + "," + encoded,
        "url-safe alphabet": base64.urlsafe_b64encode(image).decode(),
        "escaped line breaks": lines.replace("\r\n", "\\r\\n"),
        "unpadded": encoded.rstrip("="),
        "base64 of text": base64.b64encode(b"hello, not an image").decode(),
        "mixed alphabets": encoded[: len(encoded) // 2] + "-_" + encoded[len(encoded) // 2 :],
        "NUL inside": encoded[:10] + "\x00" + encoded[10:],
        "unicode digits": "١٢٣٤",
    }
    shapes = [
        Hostile(f"image {k}", json.dumps({"image": v}).encode(), "application/json")
        for k, v in images.items()
    ]
    for value in [123, None, [], {}, True, [encoded], {"data": encoded}, 1e308]:
        shapes.append(
            Hostile(f"image={value!r:.20}", json.dumps({"image": value}).encode(), "application/json")
        )
    for model in ["", "yolov8n_seg_coco", "deeplabv3_mnv2_pascal", "x" * 100, 7, ["a"], "../../x"]:
        body = json.dumps({"image": encoded, "model": model}).encode()
        shapes.append(Hostile(f"model={model!r:.20}", body, "application/json"))
    good = json.dumps({"image": encoded}).encode()
    shapes += [
        Hostile("no image", b"{}", "application/json"),
        Hostile("JSON list", b"[]", "application/json"),
        Hostile("JSON null", b"null", "application/json"),
        Hostile("JSON 1e999", b"1e999", "application/json"),
        Hostile("JSON NaN image", b'{"image": NaN}', "application/json"),
        Hostile("nested 100k deep", b'{"image": ' + b"[" * 100_000, "application/json"),
        Hostile("not utf-8", b'{"image": "\xff\xfe"}', "application/json"),
        Hostile("BOM", b"\xef\xbb\xbf" + good, "application/json"),
        Hostile(
            "duplicate keys",
            b'{"image": "AAAA", "image": ' + json.dumps(encoded).encode() + b"}",
            "application/json",
        ),
        Hostile("multipart body", multipart([image_part(image)]), MULTIPART),
        Hostile("raw image bytes", image, "image/jpeg"),
        Hostile("text/plain JSON", good, "text/plain"),
    ]
    shapes += [Hostile(f"content type {c!r}", good, c) for c in CONTENT_TYPES if "multipart" not in c]
    shapes += [
        Hostile(f"Content-Length {n!r}", good, "application/json", {"CONTENT_LENGTH": n})
        for n in CONTENT_LENGTHS
    ]
    shapes += [
        Hostile(f"{m} instead of POST", good, "application/json", method=m)
        for m in ("PUT", "PATCH", "DELETE")
    ]
    return shapes
