"""Rebuild the head crops in faces/ from the source portraits.

Run once, from the repository root: python -m benchmarks.assets.make_faces [DATA_DIR]
(DATA_DIR holds obama.jpg, obama2.jpg, obama3.jpg, biden.jpg; default ../shared/data).
The crops are committed so that tests need neither the shared folder nor this script.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import skimage.data

from benchmarks.synth import ASSET_DIR, ASSET_FACE_WIDTH, PORTRAITS


def main(data_dir: Path) -> None:
    ASSET_DIR.mkdir(parents=True, exist_ok=True)
    for p in PORTRAITS.values():
        if p.source == "skimage:astronaut":
            image = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
        else:
            image = cv2.imread(str(data_dir / p.source), cv2.IMREAD_COLOR)
        x0, y0, x1, y1 = p.crop_rect()
        h, w = image.shape[:2]
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise SystemExit(f"{p.name}: crop {p.crop_rect()} leaves the {w}x{h} photo")
        crop = image[y0:y1, x0:x1]
        scale = min(1.0, ASSET_FACE_WIDTH / (p.face_box[2] - p.face_box[0]))
        size = (round(crop.shape[1] * scale), round(crop.shape[0] * scale))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        out = ASSET_DIR / f"{p.name}.jpg"
        cv2.imwrite(str(out), crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
        print(f"{out}: {size[0]}x{size[1]} from {p.source} crop {p.crop_rect()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "shared" / "data")
