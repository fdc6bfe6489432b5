"""The fast gated prior-inverse network (`arch="fastwiener"`): dtk's default model from round 2.

Three parts, all plain convolutions (ONNX Runtime, TensorRT and torch run them as they are):

- `SeparableBank`: the known-kernel regularised inverses of k7 and k11 with a power-law image
  prior (`toolkit.core.baselines.inverse_gain`, prior "power"), sampled from a DFT, cut to 41x41 and
  applied as rank-8 separable filters (a 41x1 conv per colour, a depthwise 1x41): the same filter as the
  FFT baseline within ~0.05 dB (see `SeparableBank` for why this form is the fast one).
- `KernelHead`: which blur does the frame carry (pass = sharp or k3, k7, k11)? Strided convs,
  global mean, log, MLP over the frame and what each inverse adds to it.
- `HalfResUNet`: refines the chosen deconvolution at half resolution (pixel-unshuffle 2: the
  convolutions see 4x fewer, 4x wider pixels), output pixel-shuffled back.

y = p_pass * x + p_k7 * inv_k7(x) + p_k11 * inv_k11(x) + (p_k7 + p_k11) * refine(...), so sharp
and k3 frames pass through unchanged when the head says "pass".
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.core.baselines import inverse_gain
from toolkit.core.kernels import KERNELS
from toolkit.core.models.bands import BandEnergies
from toolkit.core.models.head import GainHead, KernelHead, gain_decision, gate, given_or_own
from toolkit.core.models.precision import fp32_region
from toolkit.core.models.registry import register

BANK_SIZE = 41  # taps: the k11 prior inverse needs 41 (31 loses ~1.9 dB on real photos)
BANK_RANK = 8  # separable terms per filter (SVD): residual energy < 1e-6 for k7/k11
# (kernel, power-law balance) of each inverse; balances tuned on the validation photos
# (python -m training.photoset tune), never on the demo frames.
PRIOR_BANK = (("k7", 0.03), ("k11", 0.07))
CLASSES = ("pass", "k7", "k11")  # "pass": sharp or k3 frames, left as they are


def prior_taps(kernel: str, balance: float, size: int = BANK_SIZE, grid: int = 512) -> np.ndarray:
    """The power-law-prior inverse of `kernel` as a centred size x size filter (float64, unit DC)."""
    gain = inverse_gain(KERNELS[kernel], (grid, grid), balance, "power")
    inverse = np.fft.irfft2(gain, s=(grid, grid))
    h = size // 2
    taps = np.roll(inverse, (h, h), axis=(0, 1))[:size, :size]
    return taps / taps.sum()


def separable_terms(taps: np.ndarray, rank: int = BANK_RANK) -> tuple[np.ndarray, np.ndarray]:
    """(vertical rank x size, horizontal rank x size) with taps ~= sum_i outer(v_i, h_i)."""
    u, s, vt = np.linalg.svd(taps)
    root = np.sqrt(s[:rank])
    return (u[:, :rank] * root).T, vt[:rank] * root[:, None]


class SeparableBank(nn.Module):
    """Fixed inverse filters: N x 3 x H x W -> N x 3*len(bank) x H x W, filter-major (f*3 + colour).

    Reflect padding (the blur's reflect-101); a 41x1 conv takes each colour to its len(bank)*rank
    channels, one per separable term (its taps on that colour's input only); a depthwise 1x41 conv
    applies each term's horizontal taps; a 1x1 conv sums the terms of each (filter, colour). The
    vertical conv reads the 3 colours unblocked (ONNX Runtime's NCHW-input kernel) rather than a
    1x1 copy into 48 channels and a depthwise 41x1: outputs equal, and on 2 cores 1.06x a whole
    1920x1080 ONNX Runtime pass (the depthwise 41x1 read 41 rows of 48 channels per output: 22 %
    of that pass), 1.6x the bank in eager torch.
    """

    def __init__(self, bank=PRIOR_BANK, size: int = BANK_SIZE, rank: int = BANK_RANK):
        super().__init__()
        self.bank, self.size, self.rank = tuple(bank), size, rank
        nf = len(self.bank)
        terms = 3 * nf * rank  # channel (c, f, i) = (c * nf + f) * rank + i
        outputs = -(-3 * nf // 16) * 16  # the sum conv's outputs padded to ONNX Runtime's block of 16
        vert = np.zeros((terms, 3, size, 1), dtype=np.float32)
        horiz = np.zeros((terms, 1, 1, size), dtype=np.float32)
        total = np.zeros((outputs, terms, 1, 1), dtype=np.float32)
        for f, (kernel, balance) in enumerate(self.bank):
            v, h = separable_terms(prior_taps(kernel, balance, size), rank)
            for c in range(3):
                first = (c * nf + f) * rank
                vert[first : first + rank, c, :, 0] = v
                horiz[first : first + rank, 0, 0, :] = h
                total[f * 3 + c, first : first + rank] = 1.0
        for name, w in (("vert", vert), ("horiz", horiz), ("total", total)):
            self.register_buffer(name, torch.from_numpy(w), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, terms = self.size // 2, self.vert.shape[0]
        # bf16 would cost ~1 LSB after a gain of ~20 (autocast has no meta device: FLOP counting)
        with fp32_region(x):
            z = F.pad(x.to(self.vert.dtype), (p, p, p, p), mode="reflect")
            z = F.conv2d(z, self.vert)
            z = F.conv2d(z, self.horiz, groups=terms)
            z = F.conv2d(z, self.total)
        return z[:, : 3 * len(self.bank)]

    def candidate(self, out: torch.Tensor, kernel: str) -> torch.Tensor:
        f = next(i for i, (k, _) in enumerate(self.bank) if k == kernel)
        return out[:, 3 * f : 3 * f + 3]


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU(inplace=True))


def _head(in_channels: int, width: int, shares: int = 0, strong: bool = False) -> KernelHead:
    """Class logits (pass, k7, k11) from the frame and the inverses' differences to it."""
    features = nn.Sequential(_conv(in_channels, width // 2, 2), _conv(width // 2, width, 2),
                             _conv(width, width, 2), _conv(width, width, 2))
    return KernelHead(features, width, len(CLASSES), shares, strong)


class HalfResUNet(nn.Module):
    """A 3-level U-Net on pixel-unshuffled input: widths w, 2w, 4w at 1/2, 1/4, 1/8 resolution.

    `extra` channels (already at half resolution, e.g. the head's probability maps) join the
    unshuffled input.
    """

    def __init__(self, in_channels: int, out_channels: int = 3, width: int = 32, extra: int = 0):
        super().__init__()
        w = width
        # exported graphs pixel-unshuffle with a grouped stride-2 conv of one-hot taps: exact in any
        # precision, and faster than the 6-D Reshape/Transpose pixel_unshuffle exports to (ONNX
        # Runtime, 2 cores: 1.07x a whole 256x448 frame, 1.04x a 1280x720 one, outputs bit-equal)
        taps = torch.zeros(4 * in_channels, 1, 2, 2)
        for i in range(4):
            taps[i::4, 0, i // 2, i % 2] = 1.0
        self.register_buffer("unshuffle", taps, persistent=False)  # not a weight: no checkpoint change
        self.in_channels = in_channels
        self.enc1 = nn.Sequential(_conv(4 * in_channels + extra, w), _conv(w, w))
        self.enc2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))
        self.enc3 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w), _conv(4 * w, 4 * w))
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = nn.Sequential(_conv(4 * w, 2 * w), _conv(2 * w, 2 * w))
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec1 = nn.Sequential(_conv(2 * w, w), _conv(w, w))
        self.out = nn.Conv2d(w, 4 * out_channels, 1)
        nn.init.zeros_(self.out.weight)  # start as the gated inverse mix
        nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():  # bit-equal to pixel_unshuffle; faster as an ONNX Conv
            u = F.conv2d(z, self.unshuffle.to(z.dtype), stride=2, groups=self.in_channels)
        else:  # eager torch: pixel_unshuffle is the faster copy (2.7x the conv's speed on 2 cores)
            u = F.pixel_unshuffle(z, 2)
        e1 = self.enc1(u if extra is None else torch.cat([u, extra], dim=1))
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([self.up2(e3), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return F.pixel_shuffle(self.out(d1), 2)


@register("fastwiener")
class FastWienerNet(nn.Module):
    """Blind: separable prior-inverse bank -> kernel head -> gated mix + half-resolution refinement.

    `forward(x, True)` also returns the head's logits (for the kernel cross-entropy). Input
    N x 3 x H x W on 0..1, H and W divisible by 8.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.bank = SeparableBank()
        n = 3 + 3 * len(self.bank.bank)
        self.head = _head(n, config.head_width, config.head_shares, config.head_strong)
        self.refine = HalfResUNet(n, 3, width=config.width, extra=len(CLASSES))
        self.bands = BandEnergies() if config.gain_head else None
        self.gain = GainHead(self.head.evidence_width, self.bands.width) if self.bands is not None else None

    takes_evidence = True  # tiles of one frame can share one decision (see toolkit.core.models.head)

    @property
    def evidence_width(self) -> int:
        return self.head.evidence_width + (self.bands.width if self.bands is not None else 0)

    def _bank_and_head_input(self, x: torch.Tensor):
        with torch.no_grad():
            bank = self.bank(x)
        inv7, inv11 = self.bank.candidate(bank, "k7"), self.bank.candidate(bank, "k11")
        return bank, inv7, inv11, torch.cat([x, inv7 - x, inv11 - x], dim=1)

    def _own_evidence(self, x: torch.Tensor, head_in: torch.Tensor) -> torch.Tensor:
        """The head's pooled features, then (a gain head's model) the band energies."""
        pooled = self.head.pool(head_in)
        return pooled if self.bands is None else torch.cat([pooled, self.bands(x).to(pooled.dtype)], dim=1)

    def evidence(self, x: torch.Tensor) -> torch.Tensor:
        """N x width: what the head pools from each image (the bank and the head only)."""
        return self._own_evidence(x, self._bank_and_head_input(x)[3])

    def decided(self, x: torch.Tensor, evidence: torch.Tensor | None = None,
                classes: torch.Tensor | None = None, known: torch.Tensor | None = None):
        """(output, logits, own evidence); the decision uses `evidence` rows >= 0, else the own.

        The mix follows the head (`gate`: soft, or the config's thresholds); `classes` (N class
        indices, training) mixes by the true classes instead; `known` (N x 1 or 1 x 1 float: a
        CLASSES index the user knows, or < 0 to decide; toolkit.core.evidence) overrides the
        decision of its rows (an element-wise blend, so it exports to ONNX and TensorRT)."""
        bank, inv7, inv11, head_in = self._bank_and_head_input(x)
        own = self._own_evidence(x, head_in)
        pooled = given_or_own(own, evidence)
        logits = self.head.decide(pooled)
        refine = None
        if classes is None and self.gain is not None:
            c = self.config
            p, refine = gain_decision(self.gain(pooled, known), known, c.gain_margin, c.gain_margin_told)
        elif classes is None:
            q = self.head.strong_probabilities(pooled)
            given = None
            c = self.config
            per_scale = max(c.gate_strong_native, c.gate_agree, c.gate_agree_native) > 0
            if evidence is not None and q is not None and per_scale:
                # a frame of several tiles: its rows are evidence (>= 0), not OWN_EVIDENCE (-1); N x 1
                # through a broadcast with the batch's own evidence (a row of `evidence` may serve all)
                given = ((evidence >= 0).to(own.dtype) + 0 * own).amax(dim=1, keepdim=True) > 0
            p = gate(torch.softmax(logits, dim=1), c.gate_deblur, c.gate_strong, q, given,
                     c.gate_strong_native, c.gate_agree, c.gate_agree_native)
        else:
            p = F.one_hot(classes, len(CLASSES)).to(x.dtype)
        if known is not None and refine is None:
            p = told(p, known)
        p = p.to(x.dtype)  # decided in fp32 (head.py), applied in the model's dtype
        p0, p7, p11 = (p[:, i : i + 1, None, None] for i in range(3))
        maps = p[:, :, None, None].expand(-1, -1, x.shape[2] // 2, x.shape[3] // 2).to(x.dtype)
        r = self.refine(torch.cat([x, bank], dim=1), maps)
        weight = p7 + p11 if refine is None else refine[:, :, None, None].to(x.dtype)
        y = p0 * x + p7 * inv7 + p11 * inv11 + weight * r
        return y, logits, own

    def forward(self, x: torch.Tensor, return_logits: bool = False, evidence: torch.Tensor | None = None,
                known: torch.Tensor | None = None):
        y, logits, _ = self.decided(x, evidence, known=known)
        return (y, logits) if return_logits else y


def told(p: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Mix weights `p` (N x 3) with the rows whose `known` (N x 1 or 1 x 1) is a class index >= 0
    replaced by that class: a one-hot from Equal + Cast, blended by (known >= 0)."""
    known = known.to(p.dtype)
    index = torch.arange(len(CLASSES), dtype=p.dtype, device=p.device)[None, :]
    onehot = (known == index).to(p.dtype)
    use = (known >= 0).to(p.dtype)
    return use * onehot + (1 - use) * p


def class_index(labels: list[str]) -> torch.Tensor:
    """Sampler labels ('sharp', 'k3', 'k7', 'k11') -> CLASSES indices (sharp and k3 -> pass)."""
    return torch.tensor([CLASSES.index(lb) if lb in CLASSES else 0 for lb in labels], dtype=torch.long)
