"""Builds the "faces inside larger photos" evaluation set: every picture of a dataset split
(default lfw-faceswap's test split), scaled by a random factor in [1.2, 2] (bicubic) and
placed at a random position in a 1280x960 scene (a smooth random colour gradient with
blurred shapes and mild noise, so no second face appears), saved as JPEG quality 90 under
OUT/{real,fake}/ with the source's name. Seeded: the same command writes the same files.
The set is derived from the dataset and stays out of the repository (write it under
target/).

Run: python3 tools/reference/faces_in_photos.py \
        --split ../shared/datasets/lfw-faceswap/test --out target/faces-in-photos"""
import argparse, os, random
from PIL import Image, ImageDraw, ImageFilter

W, H = 1280, 960


def scene(rng):
    a = [rng.randrange(256) for _ in range(3)]
    b = [rng.randrange(256) for _ in range(3)]
    small = Image.new("RGB", (64, 48))
    px = small.load()
    for y in range(48):
        for x in range(64):
            t = (x / 63 + y / 47) / 2
            px[x, y] = tuple(int(a[c] * (1 - t) + b[c] * t) for c in range(3))
    img = small.resize((W, H), Image.BILINEAR)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randrange(3, 9)):
        x0, y0 = rng.randrange(W), rng.randrange(H)
        x1, y1 = x0 + rng.randrange(60, 400), y0 + rng.randrange(60, 300)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(6))
    noise = Image.effect_noise((W, H), 12).convert("RGB")
    return Image.blend(img, noise, 0.06)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    count = 0
    for cls in ("real", "fake"):
        src = os.path.join(args.split, cls)
        dst = os.path.join(args.out, cls)
        os.makedirs(dst, exist_ok=True)
        for name in sorted(os.listdir(src)):
            if name.startswith(".") or name.endswith("_mask.png"):
                continue
            face = Image.open(os.path.join(src, name)).convert("RGB")
            factor = rng.uniform(1.2, 2.0)
            face = face.resize((round(face.width * factor), round(face.height * factor)),
                               Image.BICUBIC)
            img = scene(rng)
            x = rng.randrange(0, W - face.width)
            y = rng.randrange(0, H - face.height)
            img.paste(face, (x, y))
            img.save(os.path.join(dst, os.path.splitext(name)[0] + ".jpg"), quality=90)
            count += 1
    print(f"wrote {count} photos to {args.out}")


if __name__ == "__main__":
    main()
