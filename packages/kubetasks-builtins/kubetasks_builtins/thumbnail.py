"""Image thumbnails: a real task with a heavy dependency (Pillow) that only the worker image has."""

from __future__ import annotations

import base64
import binascii
import io
from typing import Literal

import kubetasks
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

# Refuse decompression bombs: a small upload must not become gigabytes of pixels.
Image.MAX_IMAGE_PIXELS = 40_000_000


class ThumbnailArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    image_base64: str = Field(
        min_length=4, max_length=700_000, description="The image file, base64-encoded."
    )
    max_size: int = Field(default=128, ge=16, le=1024, description="Longest side in pixels.")
    format: Literal["PNG", "JPEG", "WEBP"] = "PNG"


class BadImage(ValueError):
    """The input is not an image Pillow can read."""


@kubetasks.task(queue="default", time_limit=120)
def thumbnail(args: ThumbnailArgs, ctx: kubetasks.Context) -> object:
    """Resizes an image to a thumbnail and returns it base64-encoded."""
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
