"""Which files of which packages are real photographs, and their character: judged by eye, once.

Every photo was looked at on contact sheets (2026-11-30). Kept: real photographs. Left out:
renders, drawings, paintings, screenshots, logos, test patterns, space art, one of each stereo or
near-duplicate pair, and the demo photos (`toolkit.core.demo.TRAINING_EXCLUDED`). The character tag
says what a blind deblurrer must not mistake for blur: `soft` = soft by nature (shallow depth of
field / bokeh, motion, haze or fog, low light or dusk); everything else is `crisp`.

Files smaller than one 256x448 frame are skipped by the builder, and heavily compressed JPEGs
(quality estimate < 80) are stored downscaled (`training.photoset.compression_scale`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from training.photosources import Package

CRISP, SOFT = "crisp", "soft"
CHARACTERS = (CRISP, SOFT)


@dataclass(frozen=True)
class Source:
    """Photos of one package: `files` (path under `base` -> character), or every `glob` match under
    `base` except `skip`, soft when listed in `soft`. `reader`: file, edj, rcc, npz or raw."""

    key: str  # name prefix of its photos
    package: Package
    base: str = ""
    files: dict[str, str] = field(default_factory=dict)
    glob: tuple[str, ...] = ()  # glob patterns under base (instead of `files`)
    skip: frozenset[str] = frozenset()
    soft: frozenset[str] = frozenset()
    reader: str = "file"
    licence: str | None = None  # as stated, when the package's copyright file does not say it per file
    crisp_cap: int | None = None  # a glob source keeps every soft photo and this many crisp ones

    def items(self, names: list[str] | None = None) -> list[tuple[str, str]]:
        """(path under base, character) of its photos; `names` = the paths a glob source found.

        With `crisp_cap`, the crisp photos kept are the first in sha256("dtk-photo:" + path) order."""
        if not self.glob:
            return list(self.files.items())
        found = [
            (n, SOFT if _stem(n) in self.soft else CRISP)
            for n in sorted(names or [])
            if _stem(n) not in self.skip
        ]
        if self.crisp_cap is not None:
            import hashlib

            crisp = sorted(
                (n for n, c in found if c == CRISP),
                key=lambda n: hashlib.sha256(f"dtk-photo:{n}".encode()).hexdigest(),
            )
            keep = set(crisp[: self.crisp_cap])
            found = [(n, c) for n, c in found if c == SOFT or n in keep]
        return found


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _c(*names: str) -> dict[str, str]:
    return dict.fromkeys(names, CRISP)


def _s(*names: str) -> dict[str, str]:
    return dict.fromkeys(names, SOFT)


ENLIGHTENMENT = Source(
    "enlightenment",
    Package("enlightenment-data", "deb"),
    "usr/share/enlightenment/data/backgrounds",
    reader="edj",
    files={
        **_c("Bamboo.edj", "Green-Maple.edj", "Sea-of-Lanterns.edj", "Snow-Trees.edj"),
        **_s(
            "Foggy-Trees.edj",
            "God-Rays.edj",
            "Lichen-Branches.edj",
            "Mountain.edj",
            "Peaks.edj",
            "Red-Maple.edj",
            "Spruce-Needles.edj",
            "Sunset-Clouds.edj",
            "White-Flower.edj",
            "Yellow-Flower.edj",
        ),
    },
)  # renders left out: Dunes, Flat-Fan, Sunset-Hills; textures: Flat-Stone-Pattern, Paper-Flower

LOMIRI = Source(
    "lomiri",
    Package("lomiri-wallpapers-16.04", "deb"),
    "usr/share/backgrounds",
    files={
        **_c(
            "Bridge_by_Sander_Klootwijk.jpg",
            "Dragonfly_by_Bolly.jpg",
            "Picture_0B_by_freespace.jpg",
            "Wine_by_Jakkub_Mede.jpg",
            "aitzgorri_by_Aitzol_Berasategi.jpg",
            "friends_by_Aitzol_Berasategi.jpg",
            "life_by_Aitzol_Berasategi.jpg",
            "picosdeeuropa_by_Aitzol_Berasategi.jpg",
            "sunset_by_Aitzol_Berasategi.jpg",
        ),
        **_s(
            "free_by_Peter_Nerlich.jpg",
            "Picture_1A_by_freespace.jpg",
            "greentock_by_Peter_Nerlich.jpg",
            "seeding_by_Clements_Engelhardt.jpg",
        ),
    },
)  # left out: analogpattern (abstract), umang (render)

LXQT = Source(
    "lxqt",
    Package("lxqt-themes", "deb"),
    "usr/share/lxqt/wallpapers",
    files={
        **_c("this-is-not-windows.jpg"),
        **_s(
            "Butterfly-Kenneth-Wimer.jpg",
            "Valendas.png",
            "after-the-rain.jpg",
            "appleflower.png",
            "beam.png",
            "butterfly.png",
            "cloud.png",
            "drop.png",
            "flowers.png",
            "fog.jpg",
        ),
    },
    licence="CC-BY-SA-3.0 (usr/share/lxqt/wallpapers/License: LXQt Project Team, 2022)",
)  # 14 renders left out (origami, triangles, waves, plasma logos, kde-plasma, simple_blue_widescreen)

LIBJXL = Source(
    "jxl",
    Package("libjxl-testdata", "deb"),
    "usr/share/libjxl-testdata",
    files={
        **_c(
            "jxl/flower/flower.png",
            "jxl/hdr_room.png",
            "external/wesaturate/500px/cvo9xd_keong_macan_srgb8.png",
        ),
        **_s(
            "external/wesaturate/500px/tmshre_riaphotographs_srgb8.png",
            "external/wesaturate/500px/u76c0g_bliznaca_srgb8.png",
        ),
    },
)

TUXPAINT = Source(
    "tuxpaint",
    Package("tuxpaint-data", "deb"),
    "usr/share/tuxpaint/templates",
    files={
        **_c(
            "burnt_bark.jpg",
            "cliff.jpg",
            "corn_maze.jpg",
            "lighthouse.jpg",
            "mossy_bark.jpg",
            "mudstone.jpg",
            "ocean_splash.jpg",
            "ocean_waves.jpg",
            "redwoods_above.jpg",
            "rocks.jpg",
            "sheep.jpg",
            "sun_behind_clouds.jpg",
            "trees_above.jpg",
            "wool_mill_machine.jpg",
            "trees_at_dusk.jpg",
        ),
        **_s("jellyfish.jpg", "mossy_log.jpg", "spiders_web.jpg", "sun_behind_leaves.jpg"),
    },
)

ENDLESS_SKY = Source(
    "endless",
    Package("endless-sky-data", "deb"),
    "usr/share/games/endless-sky/images",
    glob=("land/*.jpg", "scene/*.jpg"),
    skip=frozenset(
        {
            # space art, renders, planets, graphics: not photographs of the earth
            "earthrise",
            "nasa8",
            "nasa9",
            "space6",
            "army0",
            "eso0",
            "geoscan",
            "lobby",
            "tempest",
            "engine",
            "engine2",
        }
    ),
    soft=frozenset(
        {
            "badlands5",
            "beach5",
            "canyon3",
            "canyon6",
            "city12",
            "city18-iridium",
            "city2",
            "city6",
            "city7",
            "desert1",
            "desert2",
            "desert9-sfiera",
            "fields2",
            "fog0",
            "fog1",
            "fog2",
            "fog3",
            "fog4",
            "fog5",
            "fog6",
            "fog7",
            "forest5",
            "hills3",
            "industrial0-iridium",
            "lava4",
            "lava7-sfiera",
            "mfield0",
            "mfield1",
            "mfield2",
            "mfield3",
            "mountain0",
            "mountain17-harro",
            "mountain18-harro",
            "nasa0",
            "nasa1",
            "nasa2",
            "nasa4",
            "nasa5",
            "nasa7",
            "sea3",
            "sea9",
            "sky1",
            "sky2",
            "sky4",
            "sky5",
            "sky6",
            "sky9",
            "snow5",
            "snow7",
            "snow10-sfiera",
            "snow11-sfiera",
            "station2",
            "water4",
            "water6",
        }
    ),
    crisp_cap=75,  # the most redundant group (720x360 landscapes): what the 40 MiB budget leaves room for
)  # images/land (landscapes, cities; colour-graded by the game) and images/scene (Library of Congress, NASA)

_GC = "gcompris/src/activities/"
_MON = _GC + "explore_monuments/resource/"
_ERASE = _GC + "erase/resource/"
_FARM = _GC + "explore_farm_animals/resource/animals/"
_WILD = _GC + "explore_world_animals/resource/animals/"
_MUSIC = _GC + "explore_world_music/resource/music/"
_DETAILS = _GC + "details/resource/image/"


def _gc(prefix: str, crisp: str, soft: str = "") -> dict[str, str]:
    return {f"{prefix}{n}.webp": c for names, c in ((crisp, CRISP), (soft, SOFT)) for n in names.split()}


GCOMPRIS = Source(
    "gcompris",
    Package("gcompris-qt-data", "deb"),
    "usr/share/gcompris-qt/rcc",
    reader="rcc",
    files={
        **{
            f"details.rcc:{k}": v
            for k, v in _gc(
                _DETAILS,
                "Chenonceau_background EgeskovSlotSpejling_background EilanDonanCastle_background "
                "GizahPyramids_background Louvre_2007_02_24_c_background Nagoya_background "
                "Neuschwanstein_background "
                "TajMahal_background",
                "OperaSidney_background TowerBridgeLondon_background",
            ).items()
        },
        **{
            f"erase.rcc:{k}": v
            for k, v in _gc(
                _ERASE,
                "calf camels cheetah crab giraffe goat gorilla horse kitten penguin rhinoceros "
                "spoonbills swans",
                "alpaca bee butterfly caterpillar chamaeleon dolphin flying_fox gibbon gosling heron "
                "kingfisher "
                "long_nosed_monkey macaque meerkats northern_harrier nubian_ibex pika red_panda "
                "squirrel toucan",
            ).items()
        },
        **{
            f"explore_farm_animals.rcc:{k}": v
            for k, v in _gc(_FARM, "cat chicken cow dog duck horse pig sheep", "owl").items()
        },
        **{
            f"explore_world_animals.rcc:{k}": v
            for k, v in _gc(
                _WILD,
                "bison crocodile dragon giraffe hedgehog jaguar kangaroo koala lemur moose narwhal panda "
                "polar_bear scarlet_macaw",
                "chameleon",
            ).items()
        },
        **{
            f"explore_world_music.rcc:{k}": v
            for k, v in _gc(
                _MUSIC, "africa america australia orchestra", "ireland italy japan mexico"
            ).items()
        },
        **{
            f"explore_monuments.rcc:{k}": v
            for k, v in _gc(
                _MON,
                "egypt/bentPyramid egypt/greatPyramidOfGiza egypt/meidumPyramid egypt/redPyramid "
                "france/arlesAmphitheater france/chateaudeChambord france/citedeCarcassonne "
                "france/eiffelTower "
                "france/montStMichel france/palaisdesPapes france/pontduGard france/reimsCathedral "
                "france/rocamadour "
                "germany/aulaPalatina germany/berlinCathedral germany/brandenburgGate germany/schwerinPalace "
                "germany/trierImperialBaths germany/wormsCathedral india/ajantaCave india/charminar "
                "india/gatewayofIndia india/greatStupa india/hawaMahal india/konarkSunTemple "
                "india/mysorePalace "
                "india/qutubMinar india/rangGhar india/victoriaMemorial usa/canyondeChelly "
                "usa/castillodeSanMarcos "
                "usa/castleClinton usa/fortSumter usa/georgeWashingtonBirthplace usa/lincolnMemorial "
                "usa/mountRushmore usa/navajo usa/statueofLiberty wonders/chichenItza "
                "wonders/christTheRedeemer "
                "wonders/colosseum wonders/greatWallofChina wonders/machuPicchu wonders/petra",
                "india/goldenTemple",
            ).items()
        },
    },
)  # paintings, drawings and the monuments' duplicates of details' photos (Chenonceau, Neuschwanstein, Taj
# Mahal) left out; licences from the README beside each file inside the .rcc

OPENCV = Source(
    "opencv",
    Package("opencv-doc", "deb"),
    "usr/share/doc/opencv-doc/examples/data",
    files={
        **_c(
            "aloeL.jpg",
            "apple.jpg",
            "baboon.jpg",
            "basketball1.png",
            "box_in_scene.png",
            "chicky_512.png",
            "ela_original.jpg",
            "fruits.jpg",
            "graf1.png",
            "leuvenA.jpg",
            "messi5.jpg",
            "orange.jpg",
            "rubberwhale1.png",
            "stuff.jpg",
        ),
        **_s("licenseplate_motion.jpg", "squirrel_cls.jpg", "text_defocus.jpg"),
    },
)  # one of each pair (aloeR, basketball2, ela_modified, graf3, leuvenB, rubberwhale2); calibration boards
# (left*/right*, q50), synthetic pictures, starry_night (a painting) left out

PLASMA = Source(
    "plasma",
    Package("plasma-workspace-wallpapers", "deb"),
    "usr/share/wallpapers",
    files={
        **_c("ColorfulCups", "EveningGlow", "Grey", "Kite", "OneStandsOut", "Path"),
        **_s("BytheWater", "ColdRipple", "DarkestHour", "FallenLeaf", "summer_1am"),
    },
    reader="plasma",
)  # renders and illustrations left out: training.data.WALLPAPER_RENDERS

SDDM = Source(
    "sddm",
    Package("sddm-theme-maldives", "deb"),
    "usr/share/sddm/themes/maldives",
    files=_c("background.jpg"),
)  # maldives.jpg is a screenshot of the login screen
MATPLOTLIB = Source(
    "mpl",
    Package("python-matplotlib-data", "deb"),
    "usr/share/matplotlib/mpl-data/sample_data",
    files=_c("grace_hopper.jpg"),
    licence="Matplotlib license (PSF-based, BSD-compatible: debian/copyright, Files: *)",
)
SCIPY = Source(
    "scipy",
    Package("python3-scipy", "deb"),
    "usr/lib/python3/dist-packages/scipy/misc",
    files=_c("face.dat"),
    reader="raw",
    licence="public domain (scipy.misc.face: raccoon-procyon-lotor.jpg, public-domain-image.com)",
)
PYWT = Source(
    "pywt",
    Package("python3-pywt", "deb"),
    "usr/lib/python3/dist-packages/pywt/data",
    files=_c("aero.npz", "ascent.npz"),
    reader="npz",
)  # camera.npz is scikit-image's camera

SPORCO = Source(
    "sporco",
    Package("sporco", "wheel", "0.2.2"),
    "sporco/data",
    files={**_c("barbara.png", "sail.png", "tulips.png"), **_s("kodim23.png", "monarch.png")},
    licence="BSD-3-Clause (sporco 0.2.2 wheel, License: BSD; see sporco/data/README.rst)",
)
PLENOPTIC = Source(
    "plenoptic",
    Package("plenoptic", "wheel"),
    "plenoptic/data",
    files=_c("macaca_nigra_self-portrait.jpg"),
    licence="MIT (plenoptic wheel); the photo is public domain on Wikimedia Commons",
)
THUMBOR = Source(
    "thumbor",
    Package("thumbor", "sdist", "7.8.0"),
    "",
    files={
        **_c(
            "tests/fixtures/images/10_years_of_Wikipedia_by_Guillaume_Paumier.jpg",
            "tests/fixtures/images/Giunchedi%2C_Filippo_January_2015_01.png",
            "thumbor/fixtures/filters/800px-Guido-portrait-2014.jpg",
        ),
        **_s(
            "tests/fixtures/images/Christophe_Henner_-_June_2016.jpg", "thumbor/fixtures/filters/source.jpg"
        ),
    },
    licence="MIT (thumbor 7.8.0 sdist; the portraits come from Wikimedia Commons)",
)
PILLOW = Source(
    "pillow",
    Package("pillow", "sdist"),
    "",
    files=_c(
        "Tests/images/sugarshack_bad_mpo_header.jpg",
        "Tests/images/xmp_test.jpg",
        "Tests/images/exif-72dpi-int.jpg",
    ),
    licence="MIT-CMU (Pillow sdist, LICENSE)",
)  # its hopper is matplotlib's grace_hopper

SKLEARN = Source(
    "sklearn",
    Package("scikit-learn", "wheel"),
    "sklearn/datasets/images",
    files={**_c("china.jpg"), **_s("flower.jpg")},
    licence="CC BY 2.0 (scikit-learn sample images, sklearn/datasets/images/README.txt)",
)

# scikit-image's bundled photos that are not demo photos (scikit-image is a dependency: no fetch)
SKIMAGE = {
    "brick": CRISP,
    "camera": CRISP,
    "cell": SOFT,
    "grass": CRISP,
    "gravel": CRISP,
    "hubble_deep_field": CRISP,
    "ihc": CRISP,
    "moon": SOFT,
    "retina": SOFT,
}

SOURCES = (
    ENLIGHTENMENT,
    LOMIRI,
    LXQT,
    LIBJXL,
    TUXPAINT,
    ENDLESS_SKY,
    GCOMPRIS,
    OPENCV,
    PLASMA,
    SDDM,
    MATPLOTLIB,
    SCIPY,
    PYWT,
    SPORCO,
    PLENOPTIC,
    THUMBOR,
    PILLOW,
    SKLEARN,
)

# Photos the round-2 model (toolkit/assets/dtk-unet.*) trained on: never held out for validation.
ROUND2_TRAINED = frozenset(
    {
        f"skimage_{n}"
        for n in ("brick", "camera", "cell", "grass", "gravel", "hubble_deep_field", "ihc", "moon", "retina")
    }
    | {"sklearn_china"}
    | {
        f"plasma_{n}"
        for n in ("BytheWater", "ColdRipple", "DarkestHour", "EveningGlow", "Grey", "OneStandsOut", "Path")
    }
)
# The round-2 validation photos stay held out (continuity with the numbers in MODEL.md).
ROUND2_VAL = (
    "plasma_ColorfulCups",
    "plasma_FallenLeaf",
    "plasma_Kite",
    "plasma_summer_1am",
    "sklearn_flower",
)
