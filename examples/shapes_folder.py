"""Write a folder of 64x64 pictures to train on, for docs/datasets.md: discs/ and squares/ (300 each, PNG and JPEG),
one shape of a random colour on a random background.

    python examples/shapes_folder.py shapes
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

root = Path(sys.argv[1] if len(sys.argv) > 1 else "shapes")
rng = np.random.default_rng(0)
for kind in ("discs", "squares"):
    (root / kind).mkdir(parents=True, exist_ok=True)
    for i in range(300):
        background, colour = (tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(2))
        picture = Image.new("RGB", (64, 64), background)
        x, y, r = (int(v) for v in (rng.integers(16, 48), rng.integers(16, 48), rng.integers(6, 16)))
        draw = ImageDraw.Draw(picture)
        (draw.ellipse if kind == "discs" else draw.rectangle)((x - r, y - r, x + r, y + r), fill=colour)
        picture.save(root / kind / f"{i:03d}.{'png' if i % 2 else 'jpg'}")
