"""The course's PyTorch models, shared by the benchmark reference and the fixture scripts so
that both measure and check the same definitions. state_dict keys equal FakeLens' checkpoint
keys (conv1.weight ... fc3.bias)."""
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


class SeparableConv2d(nn.Module):
    """Depthwise k×k (groups = channels) then pointwise 1×1, no biases (tstandley layout)."""

    def __init__(self, c_in, c_out, kernel_size=3, stride=1, padding=1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_in, kernel_size, stride, padding, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class Block(nn.Module):
    """tstandley/Xception-PyTorch's Block: ReLU → separable conv → BN repeated, an optional
    3×3 stride-2 max-pool, and a 1×1 (strided) conv + BN skip when the shape changes."""

    def __init__(self, c_in, c_out, reps, stride=1, start_with_relu=True, grow_first=True):
        super().__init__()
        if c_out != c_in or stride != 1:
            self.skip = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(c_out)
        else:
            self.skip = None
        rep = []
        filters = c_in
        if grow_first:
            rep += [nn.ReLU(inplace=True), SeparableConv2d(c_in, c_out), nn.BatchNorm2d(c_out)]
            filters = c_out
        for _ in range(reps - 1):
            rep += [nn.ReLU(inplace=True), SeparableConv2d(filters, filters), nn.BatchNorm2d(filters)]
        if not grow_first:
            rep += [nn.ReLU(inplace=True), SeparableConv2d(c_in, c_out), nn.BatchNorm2d(c_out)]
        if not start_with_relu:
            rep = rep[1:]
        else:
            rep[0] = nn.ReLU(inplace=False)
        if stride != 1:
            rep.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*rep)

    def forward(self, inp):
        x = self.rep(inp)
        skip = self.skipbn(self.skip(inp)) if self.skip is not None else inp
        return x + skip


class Xception(nn.Module):
    """Chollet's Xception in tstandley's layout. `blocks` lists (name, c_in, c_out, reps,
    stride, start_with_relu, grow_first); `head` is the classifier after global pooling."""

    def __init__(self, blocks, exit_channels, head):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.block_names = [b[0] for b in blocks]
        for name, *args in blocks:
            setattr(self, name, Block(*args))
        c_last = blocks[-1][2]
        e3, e4 = exit_channels
        self.conv3 = SeparableConv2d(c_last, e3)
        self.bn3 = nn.BatchNorm2d(e3)
        self.conv4 = SeparableConv2d(e3, e4)
        self.bn4 = nn.BatchNorm2d(e4)
        self.fc = head

    def features(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for name in self.block_names:
            x = getattr(self, name)(x)
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.relu(self.bn4(self.conv4(x)))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))


def mlp(*widths):
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        if i > 0:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


XCEPTION_BLOCKS = (
    [("block1", 64, 128, 2, 2, False, True), ("block2", 128, 256, 2, 2, True, True),
     ("block3", 256, 728, 2, 2, True, True)]
    + [(f"block{i}", 728, 728, 3, 1, True, True) for i in range(4, 12)]
    + [("block12", 728, 1024, 2, 2, True, False)]
)
LIL_BLOCKS = (
    [("block1", 64, 128, 2, 2, False, True), ("block2", 128, 256, 2, 2, True, True),
     ("block3", 256, 256, 2, 2, True, True)]
    + [(f"block{i}", 256, 256, 2, 1, True, True) for i in range(4, 8)]
    + [("block12", 256, 512, 2, 2, True, False)]
)


def xception_imagenet():
    """The ImageNet classifier (1000-class `fc`), as pretrained checkpoints hold it."""
    return Xception(XCEPTION_BLOCKS, (1536, 2048), nn.Linear(2048, 1000))


def xception_detector():
    """FakeLens' detector: the Xception backbone with the MLP head 2048-1000-256-64-2."""
    return Xception(XCEPTION_BLOCKS, (1536, 2048), mlp(2048, 1000, 256, 64, 2))


def lil_xception():
    """The course project's compact Xception (1,811,372 parameters)."""
    return Xception(LIL_BLOCKS, (400, 500), mlp(500, 200, 100, 10, 2))


MODELS = {"simplenet": SimpleNet, "xception": xception_detector, "lilxception": lil_xception}
