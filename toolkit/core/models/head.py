"""The kernel head both gated models share: conv features, pooled evidence, MLP -> class logits.

The head's evidence is what it pools from an image (`pool`, N x evidence_width, all >= 0): the
spatial mean of each feature map and, with `shares` > 0, the share of positions each of `shares`
learned local detectors fires on (a sigmoid of a 1x1 conv over the log features). A synthetic blur
is uniform, natural softness is not: the share of sharp regions lets the sharpest part of a frame
bound its blur. Both are means over positions, so a frame cut into tiles has exactly the evidence
of the whole frame when its tiles' evidence is averaged (toolkit.core.evidence, torch-free, where
the names and that rule live). `decide` turns evidence into class logits; `gate` turns the class
probabilities into the mix weights, soft or by conservative thresholds. With `strong`, a second MLP
on the same evidence (fitted at the frames' own scale: training.decision) says alone when a frame
is deconvolved as k11.
"""

from __future__ import annotations

import torch
from torch import nn

from toolkit.core.models.precision import fp32_region, in_fp32

LOG_FLOOR = 1e-4  # features and shares are logged above this floor (fits fp16)
# a gain-head feature whose training spread is below this is constant there (a dead feature):
# standardised with a spread of 1, so a frame where it moves (new content, fp16 rounding) moves
# the decision by that much, not by that much divided by ~0
CONSTANT_SPREAD = 1e-3


class KernelHead(nn.Module):
    """Which blur does this frame carry? `features` (strided convs) -> pooled evidence -> MLP."""

    def __init__(self, features: nn.Module, width: int, classes: int, shares: int = 0, strong: bool = False):
        super().__init__()
        self.features = features
        self.width, self.shares = width, shares
        self.local = nn.Conv2d(width, shares, 1) if shares else None
        n = width + shares
        self.mlp = nn.Sequential(nn.Linear(n, width), nn.ReLU(inplace=True), nn.Linear(width, classes))
        self.strong = (nn.Sequential(nn.Linear(n, width), nn.ReLU(inplace=True), nn.Linear(width, classes))
                       if strong else None)

    @property
    def evidence_width(self) -> int:
        return self.width + self.shares

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """N x evidence_width: each feature map's mean, then each local detector's share of positions.
        In fp32 whatever the model's dtype (fp16, bf16 autocast): the decision depends on it, and a
        decision is a threshold, where fp16 rounding flips frames near it."""
        with fp32_region(x):
            f = in_fp32(self.features, x.float())
        mean = f.mean(dim=(2, 3))
        if self.local is None:
            return mean
        share = torch.sigmoid(in_fp32(self.local, torch.log(f + LOG_FLOOR))).mean(dim=(2, 3))
        return torch.cat([mean, share], dim=1)

    def decide(self, pooled: torch.Tensor) -> torch.Tensor:
        """Class logits from evidence (log: ratios of energies, not the frame's contrast); its first
        `evidence_width` columns (a gain model's evidence carries its band energies after them)."""
        return in_fp32(self.mlp, torch.log(pooled[:, : self.evidence_width].float() + LOG_FLOOR))

    def strong_probabilities(self, pooled: torch.Tensor) -> torch.Tensor | None:
        """The second MLP's class probabilities (None without one): only its P(k11) is used (`gate`)."""
        if self.strong is None:
            return None
        pooled = pooled[:, : self.evidence_width]
        return torch.softmax(in_fp32(self.strong, torch.log(pooled.float() + LOG_FLOOR)), dim=1)

    def probabilities(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(class probabilities, the second MLP's or None): what `gate` decides on."""
        return torch.softmax(self.decide(pooled), dim=1), self.strong_probabilities(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decide(self.pool(x))


def given_or_own(own: torch.Tensor, given: torch.Tensor | None) -> torch.Tensor:
    """The evidence a batch item is decided on: `given` where it is >= 0, else its own.

    `given` is N x width or 1 x width (broadcast); an element-wise Where, so it exports to ONNX
    and TensorRT as one op.
    """
    if given is None:
        return own
    return torch.where(given < 0, own, given.to(own.dtype))


def gate(p: torch.Tensor, deblur: float, strong: float, q: torch.Tensor | None = None,
         given: torch.Tensor | None = None, strong_given: float = 0.0,
         agree: float = 0.0, agree_given: float = 0.0) -> torch.Tensor:
    """Mix weights (N x 3: pass, k7, k11) from ordered class probabilities (pass < k7 < k11).

    `deblur` <= 0: the probabilities themselves (a soft mix). Otherwise a hard, conservative
    choice: deblur only when P(k7) + P(k11) > `deblur`, and as k11 only when P(k11) > `strong`
    too (deconvolving one class too hard costs ~11 dB, one class too soft ~3 dB), so a pass is
    exactly the input. With `q` (the second MLP's probabilities, KernelHead.strong): k11 exactly
    when q's P(k11) > `strong`, else k7 when p's P(k7) + P(k11) > `deblur`, else pass; rows
    where `given` (N x 1 bool: decided on evidence given for a whole frame of several tiles, at
    its own size) compare with `strong_given` instead when it is > 0 (calibrated there).
    `agree` (`agree_given` for those rows; each 0: no condition) > 0: nothing is deblurred unless
    both MLPs give P(k7) + P(k11) above it (their confident errors fall on different frames: a
    soft photo's sharp frame one of them is sure is blurred, the other is not).
    Comparisons and casts: one ONNX Greater + Cast each.
    """
    if deblur <= 0:
        return p
    d7 = (p[:, 1:2] + p[:, 2:3] > deblur).to(p.dtype)
    if q is None:
        d11 = (p[:, 2:3] > strong).to(p.dtype) * d7
        return torch.cat([1 - d7, d7 - d11, d11], dim=1)
    if given is not None and strong_given > 0:
        d11 = _blend(given, _above(q[:, 2:3], strong_given), _above(q[:, 2:3], strong))
    else:
        d11 = _above(q[:, 2:3], strong)
    if agree > 0 or agree_given > 0:
        both = torch.minimum(p[:, 1:2] + p[:, 2:3], q[:, 1:2] + q[:, 2:3])
        blurred = _above(both, agree)
        if given is not None:
            blurred = _blend(given, _above(both, agree_given), blurred)
        d7, d11 = d7 * blurred, d11 * blurred
    d7 = d7 * (1 - d11)
    return torch.cat([1 - d7 - d11, d7, d11], dim=1)


def _above(v: torch.Tensor, threshold: float) -> torch.Tensor:
    """v > threshold as 0/1 in v's dtype; a threshold <= 0 is no condition (all ones)."""
    return (v > threshold).to(v.dtype) if threshold > 0 else torch.ones_like(v)


def _blend(given: torch.Tensor, if_given: torch.Tensor, if_own: torch.Tensor) -> torch.Tensor:
    g = given.to(if_own.dtype)  # a blend, not a Where: ONNX Runtime has no Where over bool values
    return g * if_given + (1 - g) * if_own


# the network told k7, the k7 prior inverse alone, the same for k11
GAIN_OPTIONS = ("k7", "k7-prior", "k11", "k11-prior")
NOT_ALLOWED = -1.0e4  # a gain no option reaches: options a told decision may not take


class GainHead(nn.Module):
    """The expected gain (dB over the input) of each way of deblurring a frame (GAIN_OPTIONS) from
    its evidence: the head's pooled features and the band energies (toolkit.core.models.bands),
    and the blur the user said it carries (k7 or k11 as two 0/1 columns; none: decide blind).

    Features: log of the pooled features, log10 of the band energies in grey levels^2, each
    standardised by the `mean` / `std` the fit stored; an MLP gives the 4 gains. `decide` takes
    the best allowed option when its gain exceeds a margin, else passes (0 dB: the input).
    """

    def __init__(self, pooled_width: int, bands: int, hidden: int = 64):
        super().__init__()
        self.pooled_width, self.bands = pooled_width, bands
        n = pooled_width + bands
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))
        self.mlp = nn.Sequential(nn.Linear(n + 2, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, len(GAIN_OPTIONS)))

    def features(self, evidence: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """N x (pooled + bands + 2): standardised evidence, then the told k7 / k11 columns (fp32)."""
        evidence = evidence.float()
        pooled, bands = evidence[:, : self.pooled_width], evidence[:, self.pooled_width:]
        z = torch.cat([torch.log(pooled + LOG_FLOOR), torch.log10(bands * (255.0 * 255.0) + 1e-6)], dim=1)
        std = self.std.float()
        z = (z - self.mean.float()) / torch.where(std > CONSTANT_SPREAD, std, torch.ones_like(std))
        if known is None:
            told = torch.zeros(len(z), 2, dtype=z.dtype, device=z.device)
        else:
            k = known.to(z.dtype) + 0 * z[:, :1]  # N x 1 (a 1 x 1 `known` serves every row)
            told = torch.cat([(k == 1).to(z.dtype), (k == 2).to(z.dtype)], dim=1)
        return torch.cat([z, told], dim=1)

    def forward(self, evidence: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """N x 4 gains (dB), in fp32 whatever the model's dtype: a decision never rounds in fp16."""
        return in_fp32(self.mlp, self.features(evidence, known))


def gain_decision(gains: torch.Tensor, known: torch.Tensor | None, margin: float,
                  told_margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mix weights N x 3: pass, k7, k11; refine N x 1: 1 for the network, 0 for the prior inverse
    alone) from predicted `gains` (N x 4, GAIN_OPTIONS): the best allowed option when its gain
    exceeds the margin, else pass. Blind rows may take any option (`margin`); rows told k7 / k11
    only that kernel's two (`told_margin`); rows told k3 none (a pass). Element-wise ops only."""
    if known is None:
        allow = torch.ones_like(gains)
        over = torch.full_like(gains[:, :1], margin)
    else:
        k = known.to(gains.dtype) + 0 * gains[:, :1]
        told = (k >= 0).to(gains.dtype)
        kernel = torch.cat([(k == 1), (k == 1), (k == 2), (k == 2)], dim=1).to(gains.dtype)
        allow = told * kernel + (1 - told)
        over = told * told_margin + (1 - told) * margin
    score = gains * allow + (1 - allow) * NOT_ALLOWED
    best = score.amax(dim=1, keepdim=True)
    take = (score >= best).to(gains.dtype) * (best > over).to(gains.dtype)
    p7, p11 = take[:, 0:1] + take[:, 1:2], take[:, 2:3] + take[:, 3:4]
    refine = take[:, 0:1] + take[:, 2:3]
    return torch.cat([1 - p7 - p11, p7, p11], dim=1), refine
