"""Training batches made on the device: photo windows at many scales, dead leaves, the seed blurs.

`PhotoSampler` keeps every training photo as a small pyramid of uint8 tensors where the model
trains (GPU or CPU), so a batch is indexing, flips, a colour jitter and the blur, with no host
work. Each sample is a 256x448 frame exactly as `dtk run` sees one: a window of a photo at a
random scale (or the whole photo squashed to 256x448), rounded to uint8, blurred with reflect-101
borders at the frame's edge and rounded again.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from toolkit.core.constants import FRAME_SIZE
from toolkit.core.errors import DtkError
from toolkit.core.frames import resize_frame
from toolkit.core.kernels import KERNELS
from toolkit.core.metrics import PSNR_CAP
from toolkit.core.torch_blur import blur_tensor
from training.soften import soften_frames

LABELS = ("sharp", "k3", "k7", "k11")
DEFAULT_MIX = {"sharp": 0.15, "k3": 0.15, "k7": 0.35, "k11": 0.35}


def pyramid(image: np.ndarray, size: tuple[int, int] = FRAME_SIZE, levels: int = 5) -> list[np.ndarray]:
    """The photo squashed to `size`, then `levels` scales from the smallest that holds a frame to 1:1."""
    from PIL import Image

    h, w = image.shape[:2]
    smallest = max(size[0] / h, size[1] / w)
    out = [resize_frame(image, size)]
    if smallest > 1.0:
        return out
    for s in np.geomspace(smallest, 1.0, levels):
        nh, nw = max(size[0], round(h * s)), max(size[1], round(w * s))
        out.append(
            image if s >= 1.0 - 1e-9 else np.asarray(Image.fromarray(image).resize((nw, nh), Image.LANCZOS))
        )
    return out


def render_dead_leaves(
    n: int,
    size: tuple[int, int],
    colours: torch.Tensor,
    gen: torch.Generator,
    discs: int = 300,
    r_min: float = 2.0,
    r_max: float = 160.0,
) -> torch.Tensor:
    """n dead-leaves images (uint8 N x 3 x H x W): occluding discs, radii ~ r^-3, natural colours.

    Rendered at twice the size and averaged down (soft edges); colours drawn from `colours`
    (M x 3 uint8, pixels of real photos), so colour statistics are natural.
    """
    device = colours.device
    H, W = 2 * size[0], 2 * size[1]
    yy = torch.arange(H, device=device, dtype=torch.float32).view(1, H, 1)
    xx = torch.arange(W, device=device, dtype=torch.float32).view(1, 1, W)

    def pick(count: int) -> torch.Tensor:
        idx = torch.randint(len(colours), (count,), generator=gen, device=device)
        return colours[idx].float()

    img = pick(n).view(n, 3, 1, 1).expand(n, 3, H, W).clone()
    a, b = r_min**-2, r_max**-2
    for _ in range(discs):
        u = torch.rand(n, generator=gen, device=device)
        r = (a - u * (a - b)) ** -0.5
        cy = torch.rand(n, generator=gen, device=device) * H
        cx = torch.rand(n, generator=gen, device=device) * W
        inside = (yy - cy.view(n, 1, 1)) ** 2 + (xx - cx.view(n, 1, 1)) ** 2 < (r * r).view(n, 1, 1)
        img = torch.where(inside.unsqueeze(1), pick(n).view(n, 3, 1, 1), img)
    return F.avg_pool2d(img, 2).round_().clamp_(0, 255).to(torch.uint8)


class PhotoSampler:
    """(blurred, sharp, labels) batches of 256x448 frames on `device` (float 0..1, N x 3 x H x W)."""

    def __init__(
        self,
        photos: dict[str, np.ndarray],
        device: torch.device | str = "cpu",
        *,
        mix: dict[str, float] | None = None,
        dead_leaves: float = 0.0,
        crop: int | None = None,
        size: tuple[int, int] = FRAME_SIZE,
        seed: int = 0,
        leaves_pool: int | None = None,
        soften: float = 0.0,
        native_share: float | None = None,
    ):
        if not photos:
            raise DtkError("no training photos")
        self.device, self.size, self.crop, self.p_leaves = torch.device(device), size, crop, dead_leaves
        self.p_soften = soften  # share of frames softened by nature (training.soften), softened target
        self.native_share = native_share  # share of windows from the 1:1 level (None: levels alike)
        mix = dict(mix or DEFAULT_MIX)
        unknown = set(mix) - set(LABELS)
        if unknown:
            raise DtkError(f"unknown labels in the mix: {', '.join(sorted(unknown))}")
        total = sum(mix.values())
        self.labels = [lb for lb in LABELS if mix.get(lb, 0) > 0]
        self.probs = torch.tensor([mix[lb] / total for lb in self.labels])
        self.levels: list[list[torch.Tensor]] = []
        for image in photos.values():
            self.levels.append(
                [
                    torch.from_numpy(np.ascontiguousarray(p.transpose(2, 0, 1))).to(self.device)
                    for p in pyramid(image, size)
                ]
            )
        pixels = torch.cat([lv[0].reshape(3, -1) for lv in self.levels], dim=1).T
        self.colours = pixels[
            torch.randperm(len(pixels), generator=torch.Generator().manual_seed(seed))[:65536].to(self.device)
        ]
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        # dead leaves are rendered once into a pool (rendering per batch halved GPU training speed)
        if leaves_pool is None:
            leaves_pool = 256 if self.device.type == "cuda" else 8
        self.leaves = None
        if dead_leaves > 0:
            chunks = [
                render_dead_leaves(min(16, leaves_pool - i), size, self.colours, self.gen)
                for i in range(0, leaves_pool, 16)
            ]
            self.leaves = torch.cat(chunks)

    def frames(self, n: int) -> torch.Tensor:
        """n sharp uint8 frames: random photo, scale and window, flips, colour and gamma jitter."""
        h, w = self.size
        out = []
        for _ in range(n):
            levels = self.levels[self.rng.integers(len(self.levels))]
            if self.native_share is not None and len(levels) > 1 and self.rng.random() < self.native_share:
                img = levels[-1]  # the photo at its own scale: where natural softness shows most
            else:
                img = levels[self.rng.integers(len(levels))]
            y = int(self.rng.integers(img.shape[1] - h + 1))
            x = int(self.rng.integers(img.shape[2] - w + 1))
            frame = img[:, y : y + h, x : x + w]
            if self.rng.random() < 0.5:
                frame = frame.flip(2)
            if self.rng.random() < 0.5:
                frame = frame.flip(1)
            out.append(frame)
        frames = torch.stack(out)
        if self.leaves is not None:
            pick = torch.from_numpy(self.rng.random(n) < self.p_leaves).to(self.device)
            k = int(pick.sum())
            if k:
                idx = torch.from_numpy(self.rng.integers(len(self.leaves), size=k)).to(self.device)
                leaves = self.leaves[idx]
                frames[pick] = leaves.flip(3) if self.rng.random() < 0.5 else leaves
        batch = frames.float() / 255.0
        gamma = torch.from_numpy(self.rng.uniform(0.8, 1.25, (n, 1, 1, 1))).float().to(self.device)
        gain = torch.from_numpy(self.rng.uniform(0.85, 1.1, (n, 3, 1, 1))).float().to(self.device)
        batch = (batch.clamp_min(0) ** gamma * gain).clamp_(0, 1)
        return (batch * 255).round_().to(torch.uint8)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        sharp = self.frames(n)
        if self.p_soften > 0:
            pick = torch.from_numpy(self.rng.random(n) < self.p_soften).to(self.device)
            if pick.any():
                sharp[pick] = soften_frames(sharp[pick], self.rng)
        idx = torch.multinomial(
            self.probs,
            n,
            replacement=True,
            generator=torch.Generator().manual_seed(int(self.rng.integers(2**31))),
        )
        labels = [self.labels[i] for i in idx.tolist()]
        blurred = sharp.clone()
        for name in ("k3", "k7", "k11"):
            sel = [i for i, lb in enumerate(labels) if lb == name]
            if sel:
                s = torch.tensor(sel, device=self.device)
                blurred[s] = blur_tensor(sharp[s], KERNELS[name])
        if self.crop:
            c = self.crop
            y = int(self.rng.integers(self.size[0] - c + 1))
            x = int(self.rng.integers(self.size[1] - c + 1))
            sharp, blurred = sharp[:, :, y : y + c, x : x + c], blurred[:, :, y : y + c, x : x + c]
        return blurred.float() / 255.0, sharp.float() / 255.0, labels


def validation_tensors(
    windows: list[np.ndarray], device, labels=LABELS
) -> dict[str, tuple[torch.Tensor, ...]]:
    """{label: (blurred uint8 N x 3 x H x W, sharp uint8)} of validation windows on `device`."""
    sharp = torch.from_numpy(np.stack(windows).transpose(0, 3, 1, 2).copy()).to(device)
    out = {}
    for lb in labels:
        out[lb] = (sharp if lb == "sharp" else blur_tensor(sharp, KERNELS[lb]), sharp)
    return out


def psnr_uint8(a: torch.Tensor, b: torch.Tensor, cap: float = PSNR_CAP) -> torch.Tensor:
    """Per-image PSNR (dB) of uint8 N x C x H x W tensors, identical images counted as `cap`."""
    err = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    value = 10.0 * torch.log10(255.0**2 / err.clamp_min(1e-30))
    return torch.where(err == 0, torch.full_like(value, cap), value.clamp_max(cap))


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Float 0..1 -> uint8 with round-half-even (torch.round, as np.rint): what a written PNG holds."""
    return (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
