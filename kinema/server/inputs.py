"""Request checking for the Videos API: OpenAI-style errors, model/size/seconds, uploads by their bytes."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.requests import Request

# The model names the OpenAI SDK sends; all of them mean the loaded checkpoint.
SDK_MODELS = ("sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-pro-2025-10-06", "sora-2-2025-12-08")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
MAX_IMAGE_PIXELS = 50_000_000  # a 48-megapixel photo fits; a small file claiming more is a decompression bomb


class ApiError(Exception):
    """An error answered as `{"error": {message, type, param, code}}` with an HTTP status."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 type: str = "invalid_request_error", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.type = status, message, code, param, type
        self.headers = headers or {}

    def body(self) -> dict:
        """The JSON body OpenAI clients parse."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    """A 400 naming the parameter at fault."""
    return ApiError(400, message, code=code, param=param)


def not_found(video_id: str, what: str = "video") -> ApiError:
    """A 404 that does not say whether the id exists for someone else."""
    return ApiError(404, f"No {what} found with id '{video_id}'.", code=f"{what}_not_found", param="id")


def check_model(model: str | None, names: tuple[str, ...]) -> str:
    """The model name to echo back; any SDK or kinema name maps to the loaded checkpoint."""
    model = (model or "").strip() or names[0]
    if model not in names:
        raise bad_request(f"model '{model}' is not served here; choose one of: {', '.join(names)}", "model")
    return model


def parse_size(size: str | None, resolve, default: tuple[int, int], limits: tuple[int, int]) -> tuple[int, int]:
    """'WxH' -> (width, height) the checkpoint can make; `resolve` is `Pipeline.resolve_size`."""
    if not size:
        return default
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(size))
    lo, hi = limits
    allowed = f"WIDTHxHEIGHT with each side a multiple of 16 from {lo} to {hi} (default {default[0]}x{default[1]})"
    if not match:
        raise bad_request(f"size '{size}' is not WIDTHxHEIGHT; allowed: {allowed}", "size")
    from kinema.errors import InputError

    width, height = int(match[1]), int(match[2])
    try:
        if 0 in (width, height):  # resolve() reads 0 as "the default side"
            raise InputError("a side of 0 pixels")
        return resolve(width, height)
    except InputError as exc:
        raise bad_request(f"size '{size}' is not one this checkpoint makes ({exc}); allowed: {allowed}",
                          "size") from None


def parse_seconds(seconds: str | float | None, default: float, max_seconds: float, param: str = "seconds") -> float:
    """Duration in seconds from the SDK's string ('4'); positive and at most `max_seconds`."""
    if seconds is None or seconds == "":
        return default
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = float("nan")
    if not (0 < value <= max_seconds):
        raise bad_request(f"seconds '{seconds}' is not allowed; choose a number above 0 and up to "
                          f"{max_seconds:g} (e.g. '4', '8', '12')", param)
    return value


def seconds_label(value: float) -> str:
    """'4' for 4.0, '2.5' for 2.5."""
    return f"{value:g}"


def sniff(data: bytes) -> str | None:
    """The media type from a file's first bytes: PNG, JPEG, WebP or MP4 (ftyp box), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return None


def check_upload(data: bytes, allowed: tuple[str, ...], param: str, max_bytes: int) -> str:
    """The sniffed type of an upload that is small enough and of an allowed type."""
    if len(data) > max_bytes:
        raise ApiError(413, f"{param} is {len(data)} bytes; the limit is {max_bytes} bytes",
                       code="file_too_large", param=param)
    kind = sniff(data)
    if kind not in allowed:
        names = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP", "video/mp4": "MP4"}
        raise bad_request(f"{param} is not a {' / '.join(names[a] for a in allowed)} file (checked from its "
                          "bytes, not its name)", param, code="invalid_file_type")
    return kind


def decode_image(data: bytes, param: str) -> np.ndarray:
    """uint8 (H, W, 3) from image bytes already sniffed as PNG, JPEG or WebP, at most `MAX_IMAGE_PIXELS`."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height <= MAX_IMAGE_PIXELS:
                return np.asarray(image.convert("RGB")).copy()
    except Image.DecompressionBombError:  # PIL itself refuses the largest before we can ask their size
        pass
    except UnidentifiedImageError:
        raise bad_request(f"{param} could not be decoded as an image: the file is damaged", param,
                          "invalid_file_type") from None
    except OSError as exc:
        raise bad_request(f"{param} could not be decoded as an image: {exc}", param, "invalid_file_type") from None
    raise bad_request(f"{param} is larger than {MAX_IMAGE_PIXELS // 1_000_000} megapixels; send a smaller image "
                      "(it is resized to the video's size anyway)", param, "file_too_large")


def reference_image(fields: dict[str, str], files: dict[str, bytes], max_bytes: int) -> bytes | None:
    """The `input_reference` image of a create request, an upload or a base64 data: URL, checked and decodable."""
    if fields.get("input_reference[file_id]"):
        raise bad_request("input_reference.file_id is not supported here; upload the image itself", "input_reference")
    image = files.get("input_reference")
    if image is None and fields.get("input_reference[image_url]"):
        image = data_url_bytes(fields["input_reference[image_url]"], "input_reference")
    elif image is None and fields.get("input_reference"):
        raise bad_request("input_reference must be an uploaded image file (PNG, JPEG or WebP), not text",
                          "input_reference")
    if image is not None:
        check_upload(image, IMAGE_TYPES, "input_reference", max_bytes)
        decode_image(image, "input_reference")
    return image


def data_url_bytes(url: str, param: str) -> bytes:
    """The bytes of a base64 `data:` URL; other URLs are refused because the server fetches nothing."""
    match = re.fullmatch(r"data:[\w/+.-]*(;[\w=-]+)*;base64,(.*)", url.strip(), re.S)
    if not match:
        raise bad_request(f"{param}: only base64 data: URLs are accepted (this server fetches no URLs); "
                          "upload the file instead", param)
    try:
        return base64.b64decode(match[2], validate=False)
    except ValueError:
        raise bad_request(f"{param}: the data: URL is not valid base64", param) from None


async def read_body(request: Request, max_upload: int) -> tuple[dict[str, str], dict[str, bytes]]:
    """Fields and uploaded files from a multipart, form or JSON body; nested JSON objects become `a[b]` keys."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_upload + 1024 * 1024:
        raise ApiError(413, f"request body is {length} bytes; uploads are limited to {max_upload} bytes",
                       code="file_too_large")
    content_type = request.headers.get("content-type", "")
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        async with request.form(max_files=4, max_fields=64) as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read(max_upload + 1)
                    if len(data) > max_upload:
                        raise ApiError(413, f"{name} is larger than the {max_upload}-byte upload limit",
                                       code="file_too_large", param=name)
                    files[name] = data
                else:
                    fields[name] = value
        return fields, files
    raw = await request.body()
    if not raw.strip():
        return fields, files
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request("the request body is not valid JSON or multipart form data", None) from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object", None)
    for name, value in body.items():
        if isinstance(value, dict):
            fields.update({f"{name}[{k}]": str(v) for k, v in value.items()})
        elif isinstance(value, list):
            raise bad_request(f"{name} must be a single value, not a list", name)
        elif value is not None:
            fields[name] = str(value)
    return fields, files
