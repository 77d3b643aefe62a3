"""PGNet's head after PaddleOCR's heads/e2e_pg_head.py (``PGHead``): four conv branches on
the 128-channel stride-4 features: text centre line score (sigmoid), border offsets (4),
character classification (dictionary + blank) and direction (2).

PaddleOCR returns a dict; its inference program returns the values in sorted key order
(f_border, f_char, f_direction, f_score; tools/infer/predict_e2e.py reads them so), and so
does this module's dict."""

import torch
from torch import nn

from ..layers import ConvBNLayer
from ..registry import register


def _branch(in_channels, widths, kernels):
    """ConvBNLayer + relu per width (1x1 / 3x3 alternating as PaddleOCR writes them)."""
    layers, cin = [], in_channels
    for width, k in zip(widths, kernels):
        layers.append(ConvBNLayer(cin, width, k, act="relu"))
        cin = width
    return layers


@register("Head", "PGHead")
class PGHead(nn.Module):
    def __init__(self, in_channels, character_length=37, **_):
        # PaddleOCR counts the lines of character_dict_path + 1 (blank); here the class
        # count is read from the weights (the table's infer rule) and the dictionary travels
        # in the checkpoint
        super().__init__()
        for name, widths, kernels in (("score", (64, 64, 128), (1, 3, 1)),
                                      ("boder", (64, 64, 128), (1, 3, 1)),
                                      ("char", (128, 128, 256, 256, 256), (1, 3, 1, 3, 1)),
                                      ("direc", (64, 64, 128), (1, 3, 1))):
            for i, layer in enumerate(_branch(in_channels, widths, kernels), 1):
                setattr(self, f"conv_f_{name}{i}", layer)
        self.conv1 = nn.Conv2d(128, 1, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(128, 4, 3, 1, 1, bias=False)
        self.conv3 = nn.Conv2d(256, character_length, 3, 1, 1, bias=False)
        self.conv4 = nn.Conv2d(128, 2, 3, 1, 1, bias=False)
        self.out_channels = character_length  # the recogniser-like class count (dictionary)

    def _run(self, name, n, conv, x):
        for i in range(1, n + 1):
            x = getattr(self, f"conv_f_{name}{i}")(x)
        return conv(x)

    def forward(self, x):
        f_score = torch.sigmoid(self._run("score", 3, self.conv1, x))
        f_border = self._run("boder", 3, self.conv2, x)
        f_char = self._run("char", 5, self.conv3, x)
        f_direction = self._run("direc", 3, self.conv4, x)
        return {"f_border": f_border, "f_char": f_char, "f_direction": f_direction,
                "f_score": f_score}
