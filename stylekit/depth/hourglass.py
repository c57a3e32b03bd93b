"""Chen et al. 2016, "Single-Image Depth Perception in the Wild" (NIPS): the hourglass depth network.

Written after the public PyTorch port, yifjiang/relative-depth-using-pytorch, whose released model
``src/results/Best_model_period1.pt`` (commit db31c77, March 2018) is a whole pickled ``Model``:
``src/experiment/models/hourglass.py`` (the ``Model``/``Channels1..4`` classes; identical to the
top-level ``models/hourglass.py`` of 2018) and ``src/experiment/models/layers/inception.py``. Module
names, order and shapes follow those files, so the port's parameter names load one to one:
``seq.0``–``seq.2`` a 7×7 conv + BN + ReLU stem, ``seq.3`` four nested hourglass levels
(``Channels4`` ⊃ ``Channels3`` ⊃ ``Channels2`` ⊃ ``Channels1``, each ``list[0](x) + list[1](x)``) of
Inception modules (a 1×1 branch and 1×1→k×k branches, BatchNorm without affine parameters, ReLU,
concatenated), ``seq.4`` a 3×3 conv to one channel. Output: relative *depth* (larger = farther),
trained with a ranking loss on ordinal point pairs of NYU Depth v2 (the port's README: "Ours", the
model trained on the NYU labeled training subset).

Two things differ from the authors' Torch7 original (princeton-vl/relative_depth,
``src/experiment/models/hourglass3.lua``), and stylekit follows the port, whose weights exist in
PyTorch: the port uses average pooling where the original max-pools (at the entry of ``_3channels``
and ``_4channels``). The port's May 2017 code (``blockH``/``_4channels``/``final`` attributes, and a
32-wide middle in ``Channels4``'s second branch) does not load: stylekit names the mismatching keys.

Preprocessing (``test_on_one_image.py`` of the port): ``Image.resize((320, 240))`` — the image is squashed
to 320×240 whatever its aspect — then ``ToTensor`` ([0, 1], no normalization); the map goes back to the
image size with another ``Image.resize``. PIL's default filter for ``resize`` is BICUBIC since Pillow 7
(2020; NEAREST before, when the script was written); stylekit uses that bicubic filter (torch's antialiased
bicubic equals PIL's) on both ways, without the script's 8-bit quantization of the map.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ..errors import WeightsMismatchError
from ..weights import PickledModules, WeightsFile, load_pretrained, mismatch, read_state_dict, unwrap
from .base import DepthNetwork, DepthOptions
from .transforms import Resize

REPOSITORY = "yifjiang/relative-depth-using-pytorch"
#: the commit that added the released model (2018-03-17); later commits only touched test scripts
RELEASE_COMMIT = "db31c777409c4a04f39bec062a986e88631ab801"

HOURGLASS_WEIGHTS = WeightsFile(
    filename="Best_model_period1.pt",
    sha256=None,
    git_blob_sha1="89da80e6337ac80d821797cbf9ea9e7049dda4d6",
    url=f"https://raw.githubusercontent.com/{REPOSITORY}/{RELEASE_COMMIT}/src/results/Best_model_period1.pt",
    no_checksum="no sha256 is published for this file; it is checked against the git blob id that the "
                "repository's tree records for src/results/Best_model_period1.pt",
    license=f"no license file in {REPOSITORY}; research code after Chen et al. 2016 (NIPS)",
    how_to_get=f"The PyTorch port's released model, in the GitHub repository {REPOSITORY} at "
               "src/results/Best_model_period1.pt (a whole pickled Model of its models/hourglass.py: 5.37 M "
               "float32 weights and statistics, about 22 MB; stylekit reads it without running pickled code).",
)

#: what the port's pickles may name: its own classes and the torch.nn layers its Model uses
PORT_MODULES = PickledModules(
    what="the hourglass port (yifjiang/relative-depth-using-pytorch)",
    own={"hourglass": frozenset({"Model", "Channels1", "Channels2", "Channels3", "Channels4"}),
         "inception": frozenset({"inception"})},
    nn=frozenset({"Conv2d", "BatchNorm2d", "ReLU", "Sequential", "ModuleList", "AvgPool2d", "UpsamplingNearest2d",
                  "Upsample"}),
)


# -- architecture (the port's src/experiment/models/) ---------------------------------------------

def _conv_bn_relu(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=(k - 1) // 2), nn.BatchNorm2d(cout, affine=False), nn.ReLU(inplace=True)]


class Inception(nn.Module):
    """The port's ``inception`` (layers/inception.py): parallel branches concatenated on channels.

    ``config = [[c0], [k, c_mid, c_out], ...]``: branch 0 is a 1×1 conv to ``c0``, the others a 1×1 conv to
    ``c_mid`` then a k×k conv to ``c_out``; each conv is followed by BatchNorm(affine=False) and ReLU.
    """

    def __init__(self, cin: int, config: list[list[int]]):
        super().__init__()
        self.config = config
        self.convs = nn.ModuleList([nn.Sequential(*_conv_bn_relu(cin, config[0][0], 1))])
        for k, mid, out in config[1:]:
            self.convs.append(nn.Sequential(*_conv_bn_relu(cin, mid, 1), *_conv_bn_relu(mid, out, k)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.convs], dim=1)


# The port's configurations, named by width; the comments in its hourglass.py letter them after the
# paper's figure (E, F, B, D, G, C, A).
_256 = [[64], [3, 32, 64], [5, 32, 64], [7, 32, 64]]        # E: 256 → 256
_256_WIDE = [[64], [3, 64, 64], [7, 64, 64], [11, 64, 64]]  # F: 256 → 256, larger kernels
_128 = [[32], [3, 32, 32], [5, 32, 32], [7, 32, 32]]        # B (and G from 256): → 128
_128_MID64 = [[32], [3, 64, 32], [5, 64, 32], [7, 64, 32]]  # D: 128 → 128
_128_WIDE = [[32], [3, 64, 32], [7, 64, 32], [11, 64, 32]]  # C: 128 → 128, larger kernels
_64 = [[16], [3, 32, 16], [7, 32, 16], [11, 32, 16]]        # 128 → 64
_64_MID64 = [[16], [3, 64, 16], [7, 64, 16], [11, 64, 16]]  # A: 128 → 64


class _Level(nn.Module):
    """One hourglass level: ``list[0](x) + list[1](x)`` (the port's attribute is called ``list``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.list[0](x) + self.list[1](x)


def _down_up(*modules: nn.Module) -> nn.Sequential:
    """AvgPool2d(2), the modules, 2× nearest upsampling (the port's ``nn.UpsamplingNearest2d``)."""
    return nn.Sequential(nn.AvgPool2d(2), *modules, nn.Upsample(scale_factor=2, mode="nearest"))


class Channels1(_Level):
    def __init__(self):
        super().__init__()
        self.list = nn.ModuleList([
            nn.Sequential(Inception(256, _256), Inception(256, _256)),
            _down_up(Inception(256, _256), Inception(256, _256), Inception(256, _256)),
        ])


class Channels2(_Level):
    def __init__(self):
        super().__init__()
        self.list = nn.ModuleList([
            nn.Sequential(Inception(256, _256), Inception(256, _256_WIDE)),
            _down_up(Inception(256, _256), Inception(256, _256), Channels1(), Inception(256, _256),
                     Inception(256, _256_WIDE)),
        ])


class Channels3(_Level):
    def __init__(self):
        super().__init__()
        self.list = nn.ModuleList([
            _down_up(Inception(128, _128), Inception(128, _256), Channels2(), Inception(256, _256),
                     Inception(256, _128)),
            nn.Sequential(Inception(128, _128), Inception(128, _128_WIDE)),
        ])


class Channels4(_Level):
    def __init__(self):
        super().__init__()
        self.list = nn.ModuleList([
            _down_up(Inception(128, _128), Inception(128, _128), Channels3(), Inception(128, _128_MID64),
                     Inception(128, _64)),
            nn.Sequential(Inception(128, _64_MID64)),
        ])


class HourglassNet(nn.Module):
    """The port's ``Model``: ``seq`` = conv 7×7 (3→128), BN, ReLU, ``Channels4``, conv 3×3 (64→1)."""

    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(nn.Conv2d(3, 128, 7, padding=3), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
                                 Channels4(), nn.Conv2d(64, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


def read_port_checkpoint(path) -> dict[str, torch.Tensor]:
    """State dict of a checkpoint of the port (a pickled whole ``Model``, zip or legacy format, or a state
    dict), read without executing pickled code; ``nn.DataParallel``'s ``module.`` prefix removed."""
    state = unwrap(read_state_dict(path, modules=PORT_MODULES), "state_dict", source=path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("blockH.") for k in state):
        raise WeightsMismatchError(
            f"{path} is a checkpoint of the port's May 2017 code (attributes blockH/_4channels/final, and a "
            "32-wide middle in Channels4's second branch where the released code has 64): "
            f"{mismatch(HourglassNet(), state)}. stylekit reads the released layout (attribute seq) of "
            "src/experiment/models/hourglass.py, as in Best_model_period1.pt.")
    return state


# -- the registered component ------------------------------------------------------------------

class HourglassOptions(DepthOptions):
    weights: str = Field("default", description="'default' (the port's released Best_model_period1.pt: weights "
                         "directory, cache, or a download checked against its git blob id), 'random' (for tests), "
                         "or a checkpoint of yifjiang/relative-depth-using-pytorch (pickled Model or state dict; "
                         "read without running pickled code).")
    input_size: int | None = Field(None, ge=16, description="Height the network runs at (default 240; with resize "
                                   "'authors' the width follows the port's 320:240, rounded to a multiple of 16).")


class HourglassDepth(DepthNetwork):
    """Chen et al. 2016 (NIPS) hourglass, relative depth: the PyTorch port's released model, read safely.

    Preprocessing as the port's ``src/experiment/test_on_one_image.py``: squash to 320×240 (PIL bicubic),
    RGB in [0, 1], no normalization; the map is resized back with PIL's bicubic filter.
    """

    name = "hourglass"
    Options = HourglassOptions
    output_kind = "depth"
    weights_file = HOURGLASS_WEIGHTS
    license = HOURGLASS_WEIGHTS.license
    transform = Resize(240, 320, "squash", multiple=16, interpolation="bicubic", antialias=True,
                       output_interpolation="bicubic", output_antialias=True,
                       source=f"{REPOSITORY} src/experiment/test_on_one_image.py")
    default_input_size = 240  # resize 'pad'
    size_multiple = 16  # four 2× average-pooling levels

    def __init__(self, options=None):
        super().__init__(options)
        self.net = HourglassNet()
        load_pretrained(self.net, self.weights_choice(), HOURGLASS_WEIGHTS, component=self.name,
                        what="the hourglass port's Model (src/experiment/models/hourglass.py)",
                        read=read_port_checkpoint, ignore=("*.num_batches_tracked",))
        self.freeze()

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images / 255.0)
