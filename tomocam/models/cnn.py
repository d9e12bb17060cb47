"""CNN-1 and CNN-2 of the Respond-CAM paper (Zhao et al. 2018, supplement section 2).

CNN-1 (DSRF3D of Xu et al. 2017): conv32-conv32 (3^3, same padding, ReLU), max-pool 2, conv64-conv64, max-pool 2,
FC512-ReLU, FC512-ReLU, FC(classes). CNN-2 puts a 2^3 average pool in front of CNN-1's layers.
The authors take the CAM layer at the last max-pool: ``features.pool2`` with 64 x 10^3 (CNN-1) or 64 x 5^3
(CNN-2) feature maps for a 40^3 input.

The authors' networks have no dropout (xulabs/aitom ``cnn_models.py``), so ``dropout`` defaults to 0; a
non-zero value puts dropout after each hidden FC layer and is recorded, like every architecture argument, in the
checkpoint.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from tomocam.models.registry import build_model, register_architecture

DEFAULT_CAM_LAYER = "features.pool2"


class SubtomogramCNN(nn.Module):
    """A 3-D classifier of cubic subtomograms ``(n, 1, s, s, s)`` -> logits ``(n, num_classes)``.

    Attributes:
        features: the convolutional part, ending at ``pool2``.
        classifier: flatten and fully connected layers.
        default_cam_layer: the authors' CAM layer, the last max-pool.
    """

    default_cam_layer = DEFAULT_CAM_LAYER

    def __init__(self, num_classes: int, input_size: int, fc_width: int, avgpool_first: bool, dropout: float):
        super().__init__()
        factor = 8 if avgpool_first else 4
        if input_size % factor:
            raise ValueError(f"input_size must be divisible by {factor}, got {input_size}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if avgpool_first:
            layers["avgpool"] = nn.AvgPool3d(2)
        layers.update(
            conv1=nn.Conv3d(1, 32, 3, padding=1), relu1=nn.ReLU(inplace=True),
            conv2=nn.Conv3d(32, 32, 3, padding=1), relu2=nn.ReLU(inplace=True),
            pool1=nn.MaxPool3d(2),
            conv3=nn.Conv3d(32, 64, 3, padding=1), relu3=nn.ReLU(inplace=True),
            conv4=nn.Conv3d(64, 64, 3, padding=1), relu4=nn.ReLU(inplace=True),
            pool2=nn.MaxPool3d(2),
        )
        self.features = nn.Sequential(layers)
        side = input_size // factor
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(),
            fc1=nn.Linear(64 * side**3, fc_width), relu5=nn.ReLU(inplace=True), drop1=nn.Dropout(dropout),
            fc2=nn.Linear(fc_width, fc_width), relu6=nn.ReLU(inplace=True), drop2=nn.Dropout(dropout),
            fc3=nn.Linear(fc_width, num_classes),
        ))

    def forward(self, x):  # (n, 1, s, s, s) -> (n, num_classes)
        """Logits ``(n, num_classes)`` of inputs ``(n, 1, s, s, s)``."""
        return self.classifier(self.features(x))


@register_architecture("cnn1")
def _cnn1(num_classes: int = 23, input_size: int = 40, fc_width: int = 512, dropout: float = 0.0) -> nn.Module:
    return SubtomogramCNN(num_classes, input_size, fc_width, avgpool_first=False, dropout=dropout)


@register_architecture("cnn2")
def _cnn2(num_classes: int = 23, input_size: int = 40, fc_width: int = 512, dropout: float = 0.0) -> nn.Module:
    return SubtomogramCNN(num_classes, input_size, fc_width, avgpool_first=True, dropout=dropout)


def cnn1(num_classes: int = 23, input_size: int = 40, fc_width: int = 512, dropout: float = 0.0) -> nn.Module:
    """The paper's CNN-1 (DSRF3D) for ``(n, 1, input_size, input_size, input_size)`` inputs."""
    return build_model("cnn1", num_classes=num_classes, input_size=input_size, fc_width=fc_width, dropout=dropout)


def cnn2(num_classes: int = 23, input_size: int = 40, fc_width: int = 512, dropout: float = 0.0) -> nn.Module:
    """The paper's CNN-2: a 2^3 average pool, then CNN-1's layers."""
    return build_model("cnn2", num_classes=num_classes, input_size=input_size, fc_width=fc_width, dropout=dropout)
