"""Which files redactor treats as media, by name and by FFmpeg's container name: one list for every mode."""

from __future__ import annotations

from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".ts", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv",
                              ".3gp", ".mxf", ".h264", ".h265", ".hevc"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
IMAGE_FORMATS = frozenset({"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe", "gif", "image2pipe"})
"""FFmpeg demuxers that read still pictures: such an input is one picture, written back as one."""


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def is_media_path(path: Path) -> bool:
    """Whether a file found in a folder is one to redact: a known media extension and not hidden."""
    return path.suffix.lower() in MEDIA_EXTENSIONS and not path.name.startswith(".")
