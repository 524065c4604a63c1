"""PyTorch reference for the data-pipeline rows of `fakelens bench --suite`, on the same
files and thread count as FakeLens:

- `jpeg`: a torch DataLoader with one worker per thread over COUNT images of the split (the
  first COUNT/2 file names of each class, as FakeLens picks them): PIL decode, RGB, bilinear resize to 256x256, to float, normalise with the course's
  mean/std; batches of 32. (FakeLens: decode and resize in parallel, then normalise.)
- `cache`: the same images held as uint8 (what FakeLens keeps after its first epoch): per
  batch of 32, a random horizontal flip, to float, normalise. (FakeLens: its batch loader
  with augmentation.)

Prints one JSON object: {"jpeg_images_per_sec", "cache_images_per_sec", "images", ...}."""
import argparse, json, os, time
import torch
from PIL import Image

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)

p = argparse.ArgumentParser()
p.add_argument("--root", required=True, help="a split folder with real/ and fake/")
p.add_argument("--count", type=int, default=1000)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--batch-size", type=int, default=32)
args = p.parse_args()
torch.set_num_threads(args.threads)

files = []
for label in ("real", "fake"):
    folder = os.path.join(args.root, label)
    names = sorted(f for f in os.listdir(folder)
                   if f.lower().endswith((".jpg", ".jpeg", ".png")) and "mask" not in f)
    files += [os.path.join(folder, f) for f in names[: args.count // 2]]


class Files(torch.utils.data.Dataset):
    def __len__(self):
        return len(files)

    def __getitem__(self, i):
        with Image.open(files[i]) as im:
            im = im.convert("RGB").resize((256, 256), Image.BILINEAR)
            x = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
        return x.view(256, 256, 3).permute(2, 0, 1)


loader = torch.utils.data.DataLoader(Files(), batch_size=args.batch_size,
                                     num_workers=args.threads)
start = time.perf_counter()
cached = []
for batch in loader:
    cached.append(batch)
    (batch.float() / 255 - MEAN) / STD
jpeg_secs = time.perf_counter() - start

cache = torch.cat(cached)
generator = torch.Generator().manual_seed(0)
start = time.perf_counter()
order = torch.randperm(len(cache), generator=generator)
for first in range(0, len(cache), args.batch_size):
    x = cache[order[first:first + args.batch_size]]
    flip = torch.rand(len(x), generator=generator) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    (x.float() / 255 - MEAN) / STD
cache_secs = time.perf_counter() - start
print(json.dumps({
    "jpeg_images_per_sec": len(files) / jpeg_secs,
    "cache_images_per_sec": len(files) / cache_secs,
    "images": len(files),
    "threads": args.threads,
    "torch": torch.__version__,
}))
