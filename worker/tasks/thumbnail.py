"""Image thumbnails: a real task with a heavy dependency (Pillow) that only the worker has."""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image, UnidentifiedImageError

from contracts.catalogue import ThumbnailArgs
from worker.registry import TaskContext, implements

# Refuse decompression bombs: a small upload must not become gigabytes of pixels.
Image.MAX_IMAGE_PIXELS = 40_000_000


class BadImage(ValueError):
    """The input is not an image Pillow can read."""


@implements("thumbnail")
def thumbnail(args: ThumbnailArgs, ctx: TaskContext) -> object:
    try:
        data = base64.b64decode(args.image_base64, validate=True)
        image: Image.Image = Image.open(io.BytesIO(data))
        image.load()
    except (binascii.Error, UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        raise BadImage(f"not a readable image: {exc}") from None
    ctx.progress(1, 2, f"read {image.format} {image.width}x{image.height}")
    original = image.size
    if args.format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.thumbnail((args.max_size, args.max_size))
    out = io.BytesIO()
    image.save(out, format=args.format)
    ctx.progress(2, 2, "written")
    return {
        "format": args.format,
        "original_size": list(original),
        "size": list(image.size),
        "image_base64": base64.b64encode(out.getvalue()).decode(),
    }
