"""The one image-I/O helper: every command reads and writes still images here.

Images are handed around as RGB ``uint8`` arrays of shape (H, W, 3), with an
optional separate alpha plane, whatever the file held: grayscale, palette,
16-bit, CMYK and EXIF-rotated files are all converted on the way in, so the
rest of the code sees one format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from realtime_style.errors import UserError
from realtime_style.files import atomic_output, check_input_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class RGBImage:
    rgb: np.ndarray                  # (H, W, 3) uint8
    alpha: np.ndarray | None = None  # (H, W) uint8, passed through untouched

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow and OpenCV count."""
        return self.rgb.shape[1], self.rgb.shape[0]


def load_image(path: str | os.PathLike) -> RGBImage:
    """Read any image Pillow can open, upright and as 8-bit RGB (+ alpha)."""
    path = check_input_file(path, "an image")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except UserError:
        raise
    except Image.DecompressionBombError as exc:
        raise UserError(f"{path}: image too large to read safely ({exc})") from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"{path}: cannot read image ({exc})") from None


def _to_rgb(im: Image.Image) -> RGBImage:
    alpha = None
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / 32-bit grayscale: Pillow's convert("L") clips instead of scaling.
        values = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return RGBImage(np.repeat(gray[:, :, None], 3, axis=2))
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        rgba = np.asarray(im)
        alpha = np.ascontiguousarray(rgba[:, :, 3])
        return RGBImage(np.ascontiguousarray(rgba[:, :, :3]), alpha)
    # CMYK, YCbCr, LAB, L, 1 and 16-bit RGB (read as 8-bit by Pillow) all convert here.
    return RGBImage(np.ascontiguousarray(np.asarray(im.convert("RGB"))), alpha)


def save_image(path: str | os.PathLike, image: RGBImage | np.ndarray, quality: int = 95) -> Path:
    """Write atomically; the format follows the extension. Alpha is kept where the format can."""
    path = Path(path)
    if isinstance(image, np.ndarray):
        image = RGBImage(image)
    rgb = np.asarray(image.rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"save_image wants (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    suffix = check_image_suffix(path)
    im = Image.fromarray(rgb, "RGB")
    if image.alpha is not None and suffix in (".png", ".tif", ".tiff", ".webp"):
        im.putalpha(Image.fromarray(image.alpha, "L"))
    options = {"quality": quality} if suffix in (".jpg", ".jpeg", ".webp") else {}
    with atomic_output(path) as tmp:
        im.save(tmp, format=Image.registered_extensions()[suffix], **options)
    return path


def check_image_suffix(path: str | os.PathLike) -> str:
    """The lower-case suffix of an image output, refused early if we cannot write that type."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise UserError(f"{path}: unknown image type {suffix or '(none)'}; "
                        f"use one of {', '.join(IMAGE_SUFFIXES)}")
    return suffix


def resize_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """Resize so that the longer side is ``long_side`` pixels (high-quality filter)."""
    h, w = rgb.shape[:2]
    scale = long_side / max(h, w)
    if scale == 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def to_float(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 in [0, 1]."""
    return rgb.astype(np.float32) / 255.0


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8, rounded and clipped."""
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
