"""README's and docs/' examples run as written (issue 38, item 7).

Every fenced ```bash and ```python block of README.md and of docs/*.md is run, in the order of
its document, in one temporary working folder per document, against the shipped model:

- a bash block through `bash -e -o pipefail` (every line must succeed), with the `dtk` of this
  Python's environment first on PATH;
- a python block as a script, with this checkout importable.

The working folder starts with what a reader has at hand: `clip.mp4` (any video of theirs; here 8
frames of 256x448 panned over a demo photo, H.264 with an AAC track: the `make_clip` fixture) and
`toolkit/assets` (a link to the shipped model, as in a clone's root).

Skipped, with the reason shown by pytest:
- a block whose first line is a comment `# needs: REASON` (e.g. `# needs: an NVIDIA GPU and
  TensorRT`, `# needs: the photo set (dtk data photos: ~1 GB of downloads)`, `# needs: a Ray
  cluster`): what it needs is not on a CPU-only test machine;
- README's "Two commands" block: the setup (quickstart.sh) and this very test command, which CI
  (.ci/run) runs.

A block that runs `dtk quantize` or `dtk export` (calibration or a parity check: about 30 s of
2 CPU cores each) is marked `slow`. Indented code (not fenced) is an illustration and is not run.
Each block is its own test; a block run alone first runs the blocks before it in its document
(later blocks use what earlier ones wrote, e.g. `demo/`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = ("bash", "python")
NEEDS = re.compile(r"#\s*needs:\s*(.+)")
SETUP_HEADING = "Two commands"  # README's setup and test command: CI runs it
SLOW = re.compile(r"^\s*dtk (quantize|export)\b", re.M)  # ~30 s of 2 cores each
TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    doc: Path
    index: int  # among the document's runnable blocks
    lang: str
    code: str
    line: int  # of the opening fence, 1-based
    heading: str  # the nearest heading above it

    @property
    def name(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def fenced_blocks(doc: Path) -> list[Block]:
    """The document's fenced blocks in the languages run here, in order."""
    out: list[Block] = []
    heading, fence, start, body = "", None, 0, []
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        if fence is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            elif line.startswith("```"):
                fence, start, body = line[3:].strip(), number, []
        elif line.startswith("```"):
            if fence in LANGUAGES:
                out.append(Block(doc, len(out), fence, "\n".join(body) + "\n", start, heading))
            fence = None
        else:
            body.append(line)
    assert fence is None, f"{doc}: a fence opened at line {start} is never closed"
    return out


def skip_reason(block: Block) -> str | None:
    lines = [line.strip() for line in block.code.splitlines() if line.strip()]
    needs = NEEDS.match(lines[0]) if lines else None
    if needs:
        return f"{block.name} needs {needs.group(1)}"
    if block.doc.name == "README.md" and block.heading.startswith(SETUP_HEADING):
        return f"{block.name}: README's setup and test command (CI, .ci/run, runs it)"
    return None


BLOCKS = [b for doc in DOCUMENTS for b in fenced_blocks(doc)]


def environment() -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    assert shutil.which("dtk", path=bindir), f"no `dtk` beside {sys.executable}: pip install -e ."
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return env


def run_block(block: Block, work: Path, scripts: Path) -> None:
    if block.lang == "bash":
        argv = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    else:
        script = scripts / f"{block.doc.stem}-{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        argv = [sys.executable, str(script)]
    proc = subprocess.run(argv, cwd=work, env=environment(), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=TIMEOUT_S)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        pytest.fail(f"{block.name} ({block.lang}, under '{block.heading}') exit {proc.returncode}:\n"
                    f"{block.code}\n--- output (end) ---\n{tail}", pytrace=False)


class DocumentRun:
    """One document's working folder and how far its blocks have run."""

    def __init__(self, work: Path, scripts: Path):
        self.work, self.scripts, self.done, self.failed = work, scripts, 0, None

    def run_through(self, block: Block, blocks: list[Block]) -> None:
        for earlier in blocks[self.done:block.index + 1]:
            if self.failed is not None:
                pytest.fail(f"an earlier block of {block.doc.name} failed: {self.failed}", pytrace=False)
            self.done = earlier.index + 1
            if skip_reason(earlier) is None:
                try:
                    run_block(earlier, self.work, self.scripts)
                except BaseException:
                    self.failed = earlier.name
                    raise


@pytest.fixture(scope="module")
def documents(tmp_path_factory, make_clip):
    runs: dict[Path, DocumentRun] = {}

    def get(doc: Path) -> DocumentRun:
        if doc not in runs:
            work = tmp_path_factory.mktemp(doc.stem)
            make_clip(work / "clip.mp4", 25, frames=8, size=(256, 448))
            (work / "toolkit").mkdir()
            (work / "toolkit" / "assets").symlink_to(ROOT / "toolkit" / "assets", target_is_directory=True)
            runs[doc] = DocumentRun(work, tmp_path_factory.mktemp(f"{doc.stem}-scripts"))
        return runs[doc]

    return get


def test_the_readme_has_runnable_examples():
    """The README's own examples are fenced (so run here), the setup block is found and skipped."""
    readme = [b for b in BLOCKS if b.doc.name == "README.md"]
    assert {b.lang for b in readme} == {"bash", "python"}
    assert sum(skip_reason(b) is None for b in readme) >= 3
    assert any(b.heading.startswith(SETUP_HEADING) for b in readme)


def params(blocks: list[Block]) -> list:
    return [pytest.param(b, id=b.name, marks=[pytest.mark.slow] if SLOW.search(b.code) else [])
            for b in blocks]


@pytest.mark.parametrize("block", params(BLOCKS))
def test_example_runs_as_written(block, documents):
    reason = skip_reason(block)
    if reason is not None:
        pytest.skip(reason)
    documents(block.doc).run_through(block, [b for b in BLOCKS if b.doc == block.doc])


PAGES = [*DOCUMENTS, ROOT / "MODEL.md", ROOT / "ARCHITECTURE.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PACKAGES = ("toolkit", "engines", "bench", "training", "tests", "examples", "docs")
REPO_PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(PACKAGES) + r")/[\w./*-]*[\w/*])")


def names_a_repo_file(path: str) -> bool:
    """A path, a glob, or a module's attribute (`engines/spec.BACKEND_CHOICES`) that exists."""
    if "*" in path:
        return any(ROOT.glob(path))
    module, _, attribute = path.partition(".")
    return (ROOT / path).exists() or (bool(attribute) and (ROOT / f"{module}.py").exists())


def anchors(page: Path) -> set[str]:
    """GitHub's anchor for each heading: lower case, punctuation dropped, spaces to '-'."""
    out = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_paths_resolve(page):
    """Every relative link (and its #anchor) and every repository path a page names exists: a path
    moved or renamed in the code shows up here, not in a newcomer's shell."""
    text = page.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: link to missing {target}"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{page.name}: no heading for #{anchor} in {resolved.name}"
    for path in {m.group(1) for m in REPO_PATH.finditer(text) if not text[m.end():].startswith("<")}:
        assert names_a_repo_file(path), f"{page.name} names {path}, which is not in the repository"
