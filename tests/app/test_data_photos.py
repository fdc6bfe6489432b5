"""`dtk data photos` and `dtk data demo` without the packages: what they write, how they say what is
missing, and the files in DIR they never replace (README "What dtk writes")."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from toolkit.app.cli import app


def invoke(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    res.said = " ".join((res.output + (res.stderr if res.stderr_bytes is not None else "")).split())
    return res


def photos(out, cache, *extra):
    return invoke("data", "photos", out, "--cache", cache, "--no-fetch", *extra)


def files_under(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_data_photos_without_a_cache_writes_what_is_here_with_partial_and_names_the_rest(tmp_path):
    out = tmp_path / "set"
    res = photos(out, tmp_path / "cache", "--partial")
    assert res.exit_code == 0, res.said
    records = json.loads((out / "sources.json").read_text())
    assert {r["source"] for r in records} == {"scikit-image"}  # a dependency: always here
    assert all((out / r["file"]).is_file() for r in records)
    assert all(
        set(r) >= {"licence", "character", "colour", "original_size", "jpeg_quality", "split"}
        for r in records
    )
    assert "apt-get download enlightenment-data" in res.said
    assert "pip download --no-deps --no-binary thumbor thumbor==7.8.0" in res.said
    assert "validation is short of" in res.said


def test_a_partial_set_is_an_error_unless_asked_for(tmp_path):
    """Missing packages: exit 2 before any photo is written, saying what is missing and how to get it
    (not exit 0 with 9 of 369 photos)."""
    out = tmp_path / "set"
    res = photos(out, tmp_path / "cache")
    assert res.exit_code == 2, res.said
    assert "the photo set would be partial" in res.said and "--partial" in res.said
    assert "apt-get download enlightenment-data" in res.said and "Traceback" not in res.said
    assert not out.exists() or not any(out.iterdir())


def test_files_dtk_did_not_write_are_never_replaced_without_overwrite(tmp_path):
    out = tmp_path / "set"
    out.mkdir()
    (out / "skimage_camera.jpg").write_bytes(b"my own photo")
    (out / "sources.json").write_text("my own notes")
    (out / "notes.txt").write_text("mine too")
    before = files_under(out)
    res = photos(out, tmp_path / "cache", "--partial")
    assert res.exit_code == 2, res.said
    assert "dtk did not write" in res.said and "--overwrite" in res.said
    assert files_under(out) == before  # nothing replaced, nothing added
    res = photos(out, tmp_path / "cache", "--partial", "--overwrite")
    assert res.exit_code == 0, res.said
    assert (out / "skimage_camera.jpg").read_bytes() != b"my own photo"  # its name: replaced, as asked
    assert (out / "notes.txt").read_text() == "mine too"  # not one of dtk's names: never touched
    json.loads((out / "sources.json").read_text())


def test_a_rerun_into_dtks_own_set_needs_no_overwrite_but_a_changed_file_does(tmp_path):
    out = tmp_path / "set"
    assert photos(out, tmp_path / "cache", "--partial").exit_code == 0
    first = files_under(out)
    res = photos(out, tmp_path / "cache", "--partial")
    assert res.exit_code == 0, res.said
    assert files_under(out) == first
    (out / "skimage_brick.jpg").write_bytes(b"edited by hand")
    res = photos(out, tmp_path / "cache", "--partial")
    assert res.exit_code == 2 and "skimage_brick.jpg" in res.said
    assert (out / "skimage_brick.jpg").read_bytes() == b"edited by hand"


def test_an_earlier_builds_photo_is_removed_but_never_a_file_listed_by_someone_else(tmp_path):
    """Photos dtk wrote that this build does not write again go; a sources.json that lists a user's
    file (a forged or foreign index) never makes dtk delete it."""
    out = tmp_path / "set"
    assert photos(out, tmp_path / "cache", "--partial").exit_code == 0
    manifest = json.loads((out / ".dtk-data.json").read_text())
    (out / "skimage_old.jpg").write_bytes(b"an older build's photo")
    from toolkit.core.atomic import file_sha256

    manifest["files"]["skimage_old.jpg"] = file_sha256(out / "skimage_old.jpg")
    (out / ".dtk-data.json").write_text(json.dumps(manifest))
    records = json.loads((out / "sources.json").read_text())
    assert photos(out, tmp_path / "cache", "--partial").exit_code == 0
    assert not (out / "skimage_old.jpg").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious.jpg").write_bytes(b"keep me")
    (other / "sources.json").write_text(json.dumps([{**records[0], "file": "precious.jpg"}]))
    assert photos(other, tmp_path / "cache", "--partial", "--overwrite").exit_code == 0
    assert (other / "precious.jpg").read_bytes() == b"keep me"


@pytest.mark.parametrize("where", ["inside DIR", "DIR itself", "a file"])
def test_a_cache_that_is_a_file_or_inside_dir_is_refused_before_any_fetch(tmp_path, where):
    out = tmp_path / "set"
    cache = {"inside DIR": out / "cache", "DIR itself": out, "a file": tmp_path / "cache.txt"}[where]
    if where == "a file":
        cache.write_text("not a folder")
    res = photos(out, cache, "--partial")
    assert res.exit_code == 2, res.said
    assert "--cache" in res.said and "Traceback" not in res.said
    assert not out.exists()


@pytest.mark.skipif(not (shutil.which("dpkg") and shutil.which("dpkg-deb")), reason="needs dpkg and dpkg-deb")
def test_a_relative_cache_unpacks_its_packages(tmp_path, monkeypatch):
    """`--cache rel/dir`: the .deb in it is unpacked (dpkg -x runs in a folder of its own, where a
    relative path named another place) and its photos found."""
    from training.photosources import Package, PackageCache

    pkg = tmp_path / "build" / "fakepkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text("Package: fakepkg\nVersion: 1.0\nArchitecture: all\n"
                                            "Maintainer: dtk <dtk@example.org>\nDescription: test\n")
    (pkg / "usr" / "share" / "fakepkg").mkdir(parents=True)
    (pkg / "usr" / "share" / "fakepkg" / "photo.txt").write_text("a photo")
    (tmp_path / "rel" / "cache" / "deb").mkdir(parents=True)
    deb = tmp_path / "rel" / "cache" / "deb" / "fakepkg_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(pkg), str(deb)], check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    cache = PackageCache("rel/cache", fetch=False)
    tree = cache.tree(Package("fakepkg", "deb"))
    assert tree is not None, cache.missing
    assert (tree / "usr" / "share" / "fakepkg" / "photo.txt").read_text() == "a photo"
    assert cache.versions["fakepkg"] == "1.0"


def test_data_demo_never_replaces_files_it_did_not_write(tmp_path):
    out = tmp_path / "demo"
    (out / "astronaut").mkdir(parents=True)
    (out / "astronaut" / "00000000.png").write_bytes(b"my own frame")
    res = invoke("data", "demo", out, "--frames", "1")
    assert res.exit_code == 2 and "dtk did not write" in res.said, res.said
    assert files_under(out) == {"astronaut/00000000.png": b"my own frame"}
    res = invoke("data", "demo", out, "--frames", "1", "--overwrite")
    assert res.exit_code == 0, res.said
    assert (out / "astronaut" / "00000000.png").read_bytes()[:4] == b"\x89PNG"


def test_data_demo_never_takes_a_users_pngs_for_its_own_tree(tmp_path):
    """A folder of exactly as many PNGs as the demo writes is not "already done": they are not dtk's."""
    out = tmp_path / "demo"
    out.mkdir()
    for i in range(5):
        (out / f"mine{i}.png").write_bytes(b"my own frame")
    res = invoke("data", "demo", out, "--frames", "1")
    assert res.exit_code == 2, res.said
    assert sorted(p.name for p in out.iterdir()) == [f"mine{i}.png" for i in range(5)]


def test_data_demo_reruns_into_its_own_tree_and_drops_frames_it_no_longer_writes(tmp_path):
    out = tmp_path / "demo"
    assert invoke("data", "demo", out, "--frames", "2").exit_code == 0
    res = invoke("data", "demo", out, "--frames", "1")
    assert res.exit_code == 0, res.said
    assert len(list(out.rglob("*.png"))) == 5 and not list(out.rglob("00000001.png"))


def test_data_demo_reruns_into_a_tree_an_older_dtk_wrote_without_a_manifest(tmp_path):
    """A demo tree without .dtk-data.json (an older dtk's) whose files are byte for byte the ones the
    demo writes is rewritten without --overwrite (nothing is lost); one edited file makes it refused."""
    out = tmp_path / "demo"
    assert invoke("data", "demo", out, "--frames", "1").exit_code == 0
    (out / ".dtk-data.json").unlink()
    res = invoke("data", "demo", out, "--frames", "1")
    assert res.exit_code == 0, res.said
    (out / ".dtk-data.json").unlink()
    (out / "coffee" / "00000000.png").write_bytes(b"edited")
    res = invoke("data", "demo", out, "--frames", "1")
    assert res.exit_code == 2 and "coffee/00000000.png" in res.said
    assert (out / "coffee" / "00000000.png").read_bytes() == b"edited"
