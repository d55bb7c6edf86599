"""A TFDS dataset builder for Tiny ImageNet, from the standard tiny-imagenet-200.zip.

Importing this module imports TensorFlow Datasets (the builder subclasses
`tfds.core.GeneratorBasedBuilder`), so only the Tiny ImageNet loader imports it.

The archive holds 200 classes of 64x64 JPEGs:

    tiny-imagenet-200/wnids.txt                      the 200 class ids, in label order
    tiny-imagenet-200/words.txt                      wnid <TAB> words, for all synsets
    tiny-imagenet-200/train/<wnid>/images/*.JPEG     500 per class: 100000
    tiny-imagenet-200/val/images/*.JPEG              50 per class:  10000
    tiny-imagenet-200/val/val_annotations.txt        file <TAB> wnid <TAB> box
    tiny-imagenet-200/test/images/*.JPEG             10000, unlabelled: not used

The builder's splits are the archive's: `train` (100000) and `validation` (the
10000 `val` images). Their labels come from `val/val_annotations.txt`: the
archive's `val/images` folder is flat, so a folder-per-class reader (the seed's
`ImageFolder`) cannot label them without being patched.

The archive is read from `dl_manager.manual_dir` (by default
`<data_dir>/downloads/manual/tiny-imagenet-200.zip`) when it is there, and
downloaded from `DOWNLOAD_URL` otherwise.
"""

from __future__ import annotations

import posixpath
import zipfile

from winact_jax import extras
from winact_jax.data.tfds_datasets import SOURCE_FILES

tfds = extras.require("tensorflow_datasets", "tfds", "the TFDS datasets")

ARCHIVE_NAME, DOWNLOAD_URL = SOURCE_FILES["tiny_imagenet"]
IMAGE_SIZE = 64


class TinyImagenet(tfds.core.GeneratorBasedBuilder):
    """Tiny ImageNet 200: 64x64 images, 100000 train, 10000 labelled validation."""

    # TFDS derives the registered name from the class name: "tiny_imagenet".
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "train, and validation labelled from val/val_annotations.txt.",
    }
    # A class attribute, so a test can point it at an address that refuses at once.
    DOWNLOAD_URL = DOWNLOAD_URL
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    Without internet: download {ARCHIVE_NAME} from {DOWNLOAD_URL} elsewhere and
    place it, unextracted, in the manual directory (by default
    `<data_dir>/downloads/manual/`).
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=(
                "Tiny ImageNet: 200 ImageNet classes at 64x64, 500 training and 50 validation images per class."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), encoding_format="jpeg"),
                    # Names (the wnids, in wnids.txt's order) are read from the
                    # archive in `_split_generators`, as TFDS's CIFAR builder does.
                    "label": tfds.features.ClassLabel(),
                    "file_name": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="http://cs231n.stanford.edu/",
            # "class_words": one words.txt entry per label, saved in metadata.json.
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        archive = self._archive_path(dl_manager)
        with zipfile.ZipFile(archive.open("rb")) as zip_file:
            root = _archive_root(zip_file)
            wnids = _read_lines(zip_file, root + "wnids.txt")
            words = _read_words(zip_file, root + "words.txt")
        self.info.features["label"].names = wnids
        # A class missing from words.txt keeps its wnid as its name.
        self.info.metadata["class_words"] = [words.get(wnid, wnid) for wnid in wnids]
        return {
            "train": self._generate_examples(archive, "train"),
            "validation": self._generate_examples(archive, "validation"),
        }

    def _archive_path(self, dl_manager: tfds.download.DownloadManager):
        """The manually placed archive if there is one, else the downloaded one."""
        try:
            manual_archive = dl_manager.manual_dir / ARCHIVE_NAME
        except AssertionError:
            # TFDS's way of saying the manual directory is missing or empty.
            manual_archive = None
        if manual_archive is not None and manual_archive.exists():
            return manual_archive
        return dl_manager.download(self.DOWNLOAD_URL)

    def _generate_examples(self, archive, split: str):
        """Yields (file name, example); file names are unique within the archive."""
        with zipfile.ZipFile(archive.open("rb")) as zip_file:
            root = _archive_root(zip_file)
            if split == "train":
                members = _train_members(zip_file, root)
            else:
                annotations = _read_val_annotations(zip_file, root)
                members = ((f"{root}val/images/{file_name}", wnid) for file_name, wnid in annotations.items())
            for member, wnid in members:
                file_name = posixpath.basename(member)
                # Encoded bytes go in as they are: no re-encoding. The few grey
                # JPEGs are decoded to three channels when read (the feature's shape).
                yield (
                    file_name,
                    {
                        "image": zip_file.read(member),
                        "label": wnid,
                        "file_name": file_name,
                    },
                )


def _archive_root(zip_file: zipfile.ZipFile) -> str:
    """The folder holding wnids.txt ("tiny-imagenet-200/" in the official zip)."""
    for name in zip_file.namelist():
        if posixpath.basename(name) == "wnids.txt":
            return name[: -len("wnids.txt")]
    raise ValueError(f"{zip_file.filename or 'the archive'} has no wnids.txt")


def _read_lines(zip_file: zipfile.ZipFile, member: str) -> list[str]:
    text = zip_file.read(member).decode("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _read_words(zip_file: zipfile.ZipFile, member: str) -> dict[str, str]:
    """wnid -> words, from words.txt ("n01443537<TAB>goldfish, Carassius auratus")."""
    if member not in zip_file.namelist():
        return {}
    words = {}
    for line in _read_lines(zip_file, member):
        wnid, _, text = line.partition("\t")
        words[wnid] = text.strip() or wnid
    return words


def _read_val_annotations(zip_file: zipfile.ZipFile, root: str) -> dict[str, str]:
    """File name -> wnid for every validation image, from val/val_annotations.txt."""
    annotations = {}
    for line in _read_lines(zip_file, root + "val/val_annotations.txt"):
        file_name, wnid = line.split("\t")[:2]
        annotations[file_name] = wnid
    return annotations


def _train_members(zip_file: zipfile.ZipFile, root: str):
    """(member, wnid) for every train/<wnid>/images/<file>.JPEG, in archive order."""
    for name in zip_file.namelist():
        parts = name[len(root) :].split("/") if name.startswith(root) else ()
        if (
            len(parts) == 4
            and parts[0] == "train"
            and parts[2] == "images"
            and parts[3].lower().endswith((".jpeg", ".jpg"))
        ):
            yield name, parts[1]
