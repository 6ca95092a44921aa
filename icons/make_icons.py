"""Draws the Notch icon and writes every size Tauri bundles.

Run from the repository root: python3 icons/make_icons.py (needs Pillow).
The PNGs are committed; this script is how they were made.
"""
from PIL import Image, ImageDraw

def draw(size: int) -> Image.Image:
    s = size * 4  # draw large, then downsample for smooth edges
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle([0, 0, s - 1, s - 1], radius=s // 5, fill=(24, 38, 64, 255))
    # A tally stick with a notch: the wallet's mark.
    w = s // 5
    x0 = (s - w) // 2
    d.rounded_rectangle([x0, s // 6, x0 + w, s - s // 6], radius=w // 3, fill=(236, 196, 84, 255))
    d.polygon([(x0 - 1, s // 2 - w), (x0 + w // 2 + w // 6, s // 2), (x0 - 1, s // 2 + w)],
              fill=(24, 38, 64, 255))
    d.polygon([(x0 + w + 1, s // 2 - w // 2 - w // 3), (x0 + w // 2 + w // 3, s // 2 - w // 3),
               (x0 + w + 1, s // 2 - w // 3 + w // 2)], fill=(24, 38, 64, 255))
    return img.resize((size, size), Image.LANCZOS)

for name, size in [("32x32.png", 32), ("64x64.png", 64), ("128x128.png", 128),
                   ("128x128@2x.png", 256), ("icon.png", 512)]:
    draw(size).save(f"icons/{name}")
big = draw(1024)
big.save("icons/icon.ico", sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (256, 256)])
big.save("icons/icon.icns")
