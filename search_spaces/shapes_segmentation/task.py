"""The segmentation task: per-pixel cross-entropy, scored by the mean intersection over union
of the three classes, accumulated over the whole split by torchmetrics."""

import torch.nn.functional as F
from torchmetrics.classification import MulticlassJaccardIndex


class Segmentation:
    def __init__(self, classes: int = 3):
        self.classes = classes

    def loss(self, output, target):
        return F.cross_entropy(output, target)  # output (B, C, H, W), target (B, H, W)

    def metrics(self):
        return {"iou": MulticlassJaccardIndex(num_classes=self.classes)}

    def prepare(self, output, target):
        return output.argmax(dim=1), target  # the metric takes predicted classes


def make(classes: int = 3) -> Segmentation:
    return Segmentation(classes)
