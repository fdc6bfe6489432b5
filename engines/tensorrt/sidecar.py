"""What an engine was built with (the JSON sidecar next to the plan), and the batch profile.

A serialized TensorRT engine only runs on the TensorRT version that built it and on
GPUs of the compute capability it was built for (no version- or hardware-compatibility
mode is used here). The sidecar records both so that loading refuses a mismatch with a
sentence that says how to rebuild, instead of failing inside deserialization.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.errors import DtkError

SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class BatchProfile:
    """One optimization profile: the batch dimension varies, H x W are fixed (NCHW)."""

    min: int = 1
    opt: int = 8
    max: int = 32
    height: int = 256
    width: int = 448
    channels: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise DtkError(f"batch profile needs 1 <= min <= opt <= max; got min={self.min}, "
                           f"opt={self.opt}, max={self.max}")
        if self.height < 1 or self.width < 1 or self.channels < 1:
            raise DtkError(f"bad frame geometry {self.channels}x{self.height}x{self.width}")

    def shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.channels, self.height, self.width)

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes for `IOptimizationProfile.set_shape`."""
        return self.shape(self.min), self.shape(self.opt), self.shape(self.max)

    def contains(self, batch: int) -> bool:
        return self.min <= batch <= self.max

    def chunks(self, batch: int) -> list[tuple[int, int, int]]:
        """Split `batch` rows into runs the profile accepts: (start, stop, run_size) each.

        Runs hold at most `max` rows; a run shorter than `min` is padded up to `min`
        (run_size > stop - start: the caller fills and then drops the padding rows).
        """
        if batch < 1:
            raise DtkError(f"empty batch ({batch} frames)")
        out = []
        for start in range(0, batch, self.max):
            stop = min(start + self.max, batch)
            out.append((start, stop, max(stop - start, self.min)))
        return out

    @classmethod
    def from_json(cls, obj: dict) -> BatchProfile:
        if not isinstance(obj, dict):
            raise TypeError(f"'profile' must be an object with min/opt/max, got {obj!r}")
        keys = ("min", "opt", "max", "height", "width", "channels")
        missing = [k for k in ("min", "opt", "max") if k not in obj]
        if missing:
            raise KeyError(f"'profile' lacks {', '.join(missing)}")
        return cls(**{k: int(obj[k]) for k in keys if k in obj})


@dataclass
class EngineSidecar:
    """Facts about one built engine, saved as `<engine>.json`."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "major.minor", e.g. "9.0"
    precision: str  # fp16 | fp32 | int8
    profile: BatchProfile  # the first optimization profile (the network's 256x448 unless built otherwise)
    onnx_sha256: str
    onnx_path: str = ""
    input_name: str = ""
    output_name: str = ""
    build_seconds: float = 0.0
    built_at: str = ""  # ISO 8601, UTC
    dtk_version: str = ""
    strongly_typed: bool = True
    builder_flags: list[str] = field(default_factory=list)
    profiles: list[BatchProfile] = field(default_factory=list)  # all, `profile` first ([]: it alone)
    decides_whole_frame: bool = False  # the ONNX's model decides a frame on its own evidence (gain head)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> EngineSidecar:
        if not isinstance(obj, dict):
            raise TypeError(f"expected a JSON object, got {type(obj).__name__}")
        if "profile" not in obj:
            raise KeyError("no 'profile'")
        known = {k: v for k, v in obj.items() if k in cls.__dataclass_fields__}
        known["profile"] = BatchProfile.from_json(obj["profile"])
        profiles = obj.get("profiles") or []
        if not isinstance(profiles, list):
            raise TypeError(f"'profiles' must be a list of profiles, got {profiles!r}")
        known["profiles"] = [BatchProfile.from_json(p) for p in profiles]
        return cls(**known)

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(H, W) of every profile, the first first."""
        return [(p.height, p.width) for p in (self.profiles or [self.profile])]


def sidecar_path(engine_path: Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + SIDECAR_SUFFIX)


def rebuild_hint(engine_path: Path, onnx_path: str = "") -> str:
    model = onnx_path or "MODEL.onnx"
    return f"rebuild it on this machine: dtk build-engine {model} -o {engine_path} --overwrite"


def save_sidecar(engine_path: Path, sidecar: EngineSidecar) -> Path:
    path = sidecar_path(engine_path)
    write_bytes_atomic(path, (json.dumps(sidecar.to_json(), indent=2) + "\n").encode())
    return path


def load_sidecar(engine_path: Path) -> EngineSidecar:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise DtkError(f"engine {engine_path} has no sidecar {path.name}, so dtk cannot tell which TensorRT "
                       f"and GPU built it; {rebuild_hint(engine_path)}")
    try:
        return EngineSidecar.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError) as exc:
        raise DtkError(f"unreadable engine sidecar {path} ({exc}); {rebuild_hint(engine_path)}") from exc


def check_compatible(sidecar: EngineSidecar, *, tensorrt_version: str, compute_capability: str,
                     engine_path: Path) -> None:
    """Refuse an engine built by another TensorRT version or for another compute capability."""
    problems = []
    if sidecar.tensorrt_version != tensorrt_version:
        problems.append(f"it was built by TensorRT {sidecar.tensorrt_version}, "
                        f"this is TensorRT {tensorrt_version}")
    if sidecar.compute_capability != compute_capability:
        problems.append(f"it was built for compute capability {sidecar.compute_capability} "
                        f"({sidecar.gpu_name}), this GPU is {compute_capability}")
    if problems:
        raise DtkError(f"engine {engine_path} cannot run here: {'; '.join(problems)}. "
                       f"{rebuild_hint(engine_path, sidecar.onnx_path)}")


@dataclass(frozen=True)
class GpuFacts:
    name: str
    compute_capability: str  # "major.minor"


def cuda_gpu_facts(device_index: int = 0) -> GpuFacts:
    """Name and compute capability of the CUDA device (through torch), or a DtkError when there is none."""
    import torch

    if not torch.cuda.is_available():
        raise DtkError("TensorRT needs an NVIDIA GPU with CUDA; torch sees none on this machine "
                       "(use --backend onnxruntime or torch on CPU)")
    major, minor = torch.cuda.get_device_capability(device_index)
    return GpuFacts(torch.cuda.get_device_name(device_index), f"{major}.{minor}")
