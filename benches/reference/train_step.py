"""PyTorch reference for `fakelens bench`: the same model, shapes, optimiser and thread count,
timed the same way (2 warm-up steps, then N timed Adam steps on random 256x256 inputs).
Prints one JSON object: {"train_images_per_sec": ..., "ms_per_step": ..., "threads": ...}."""
import argparse, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class SimpleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 7)
        self.conv2 = nn.Conv2d(6, 16, 7)
        self.conv3 = nn.Conv2d(16, 24, 7)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(24 * 26 * 26, 1024)
        self.fc2 = nn.Linear(1024, 256)
        self.fc3 = nn.Linear(256, 2)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


MODELS = {"simplenet": SimpleNet}

p = argparse.ArgumentParser()
p.add_argument("--model", default="simplenet", choices=sorted(MODELS))
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--threads", type=int, default=0)
args = p.parse_args()
if args.threads > 0:
    torch.set_num_threads(args.threads)
torch.manual_seed(0)
model = MODELS[args.model]()
model.train()
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
x = torch.randn(args.batch_size, 3, 256, 256)
y = torch.arange(args.batch_size) % 2


def step():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()


for _ in range(2):
    step()
start = time.perf_counter()
for _ in range(args.steps):
    step()
elapsed = time.perf_counter() - start
print(json.dumps({
    "train_images_per_sec": args.steps * args.batch_size / elapsed,
    "ms_per_step": 1000 * elapsed / args.steps,
    "threads": torch.get_num_threads(),
    "torch": torch.__version__,
}))
