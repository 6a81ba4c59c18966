"""Write small ImageNet ResNets in torchvision's naming as PyTorch state dicts, with the logits
PyTorch computes from them: the fixtures of the lab's `--pretrained` import.

The blocks are torchvision's own classes (`torchvision.models.resnet.BasicBlock`, `Bottleneck`)
assembled by torchvision's own `ResNet._make_layer` and run by its `ResNet._forward_impl`, so the
parameter names (`layer1.0.downsample.0.weight`, ...), the layouts, the stride's place and the
forward pass are torchvision's; only the stage widths are 4, 8, 16, 32 instead of 64, 128, 256,
512, which keeps the files small. Every parameter and running statistic is drawn at random (a
fresh BatchNorm's statistics, 0 and 1, would hide a mapping mistake).

Writes into OUT: `tiny-r18.pth`, `tiny-r50.pth` (`torch.save(model.state_dict())`, 5 classes),
`tiny-r18-module.pth` (the ResNet-18's keys under `module.`, as a checkpoint of `DataParallel`)
and `tiny-logits.json` (the input and each model's logits in eval mode). Run by
`crates/gc-lab/reference/make_pretrained.sh`; the test `models::pretrained::tests` reads them.
"""

import json
import pathlib
import sys

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

WIDTHS = [4, 8, 16, 32]
CLASSES = 5


class TinyResNet(nn.Module):
    """torchvision's ResNet with narrow stages: the attributes `_make_layer` reads, set as
    torchvision's `ResNet.__init__` sets them (groups 1, base width 64, no dilation)."""

    def __init__(self, block, layers):
        super().__init__()
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = WIDTHS[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, WIDTHS[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = ResNet._make_layer(self, block, WIDTHS[0], layers[0])
        self.layer2 = ResNet._make_layer(self, block, WIDTHS[1], layers[1], stride=2)
        self.layer3 = ResNet._make_layer(self, block, WIDTHS[2], layers[2], stride=2)
        self.layer4 = ResNet._make_layer(self, block, WIDTHS[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(WIDTHS[3] * block.expansion, CLASSES)

    def forward(self, x):
        return ResNet._forward_impl(self, x)


def randomized(model, generator):
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var") or (name.endswith("weight") and tensor.dim() == 1):
                values = 0.5 + torch.rand(tensor.shape, generator=generator)
            else:
                values = 0.2 * torch.randn(tensor.shape, generator=generator)
            tensor.copy_(values)
    return model.eval()


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(2004_01461)
    x = torch.randn(2, 3, 32, 32, generator=generator)
    record = {
        "made_by": f"make_pretrained.py, torch {torch.__version__}, torchvision {torchvision.__version__}",
        "input_shape": list(x.shape),
        "input": x.flatten().tolist(),
    }
    for name, block, layers in [("r18", BasicBlock, [2, 2, 2, 2]), ("r50", Bottleneck, [3, 4, 6, 3])]:
        model = randomized(TinyResNet(block, layers), generator)
        torch.save(model.state_dict(), out / f"tiny-{name}.pth")
        if name == "r18":
            # As the seed saves its models, from inside DataParallel: every key under `module.`.
            wrapped = {f"module.{key}": value for key, value in model.state_dict().items()}
            torch.save(wrapped, out / "tiny-r18-module.pth")
        with torch.no_grad():
            record[f"logits_{name}"] = model(x).flatten().tolist()
    (out / "tiny-logits.json").write_text(json.dumps(record) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "crates/gc-lab/tests/fixtures/pretrained")
