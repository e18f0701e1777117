"""Training photos: random crops from any folder tree, in an order fixed by (seed, step).

The batch of every step is a pure function of the seed and the step number:
each epoch is a permutation drawn from (seed, epoch), and each sample's crop and
flip come from (seed, sample number). So a resumed run sees exactly the batches
an uninterrupted one would, whatever the number of DataLoader workers, and
``torchrun`` ranks split every global batch between them without talking.

Unreadable files are found twice: an up-front scan (``Image.verify``: cheap, it
reads headers) drops files that are not images at all and counts them; a file
that passes the scan but fails to decode later (say, a truncated JPEG) is
replaced by another image drawn from the same sample seed, and reported back
with its batch so that the training loop can count it across workers.
"""

from __future__ import annotations

import hashlib
import os
import signal
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler

from realtime_style.errors import UserError
from realtime_style.images import IMAGE_SUFFIXES

# Images whose short side exceeds this many crop sizes are shrunk first, so that a
# crop from a 4000 px photo still shows objects rather than a patch of texture.
MAX_SCALE = 2
# How many replacement images to try before giving up on a sample.
MAX_RETRIES = 20
_UNREADABLE = (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError)


def find_images(roots: Sequence[str | os.PathLike]) -> list[Path]:
    """All files with an image suffix under ``roots`` (recursive), sorted so the order is reproducible."""
    files: set[Path] = set()
    for root in map(Path, roots):
        if not root.exists():
            raise UserError(f"data folder {root} does not exist")
        if not root.is_dir():
            raise UserError(f"data folder {root} is not a folder")
        files.update(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {', '.join(map(str, roots))}")
    return sorted(files)


def is_readable(path: Path) -> bool:
    """Cheap check that ``path`` is an image Pillow can open (headers and, for PNG, checksums)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about odd EXIF, large images, ...
            with Image.open(path) as im:
                im.verify()
        return True
    except _UNREADABLE:
        return False


def scan_images(roots: Sequence[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """(readable, unreadable) image files under ``roots``; raises UserError if none are readable."""
    files = find_images(roots)
    good, bad = [], []
    for path in files:
        (good if is_readable(path) else bad).append(path)
    if not good:
        raise UserError(f"none of the {len(files)} image files under {', '.join(map(str, roots))} "
                        "can be read (all corrupt or not images)")
    return good, bad


def files_digest(files: Sequence[Path]) -> str:
    """sha256 of the file list: tells a resumed run whether it sees the same data."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.resolve()).encode() + b"\n")
    return digest.hexdigest()


def load_rgb(path: Path, min_short_side: int = 0, max_short_side: int = 0) -> np.ndarray:
    """Decode to upright RGB uint8, scaled (aspect kept) so that the short side is in range."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as im:
            if max_short_side:
                im.draft("RGB", _scaled(im.size, max_short_side))  # JPEG: decode at reduced size, fast
            im = ImageOps.exif_transpose(im).convert("RGB")
    short = min(im.size)
    if min_short_side and short < min_short_side:
        im = im.resize(_scaled(im.size, min_short_side), Image.Resampling.BICUBIC)
    elif max_short_side and short > max_short_side:
        im = im.resize(_scaled(im.size, max_short_side), Image.Resampling.LANCZOS)
    return np.asarray(im)


def _scaled(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    w, h = size
    scale = short_side / min(w, h)
    return max(short_side, round(w * scale)), max(short_side, round(h * scale))


def random_crop(rgb: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A size x size crop at a random place, mirrored left-right half the time."""
    h, w = rgb.shape[:2]
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    crop = rgb[top:top + size, left:left + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return crop


def center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return rgb[top:top + size, left:left + size]


def to_chw_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div_(255.0)  # copy: PIL's arrays are read-only


class ImageFolderDataset(Dataset):
    """Random ``size`` crops of the images in a folder tree.

    Indexed by ``(index, sample_seed)`` pairs (see ``StepBatchSampler``): the seed
    fixes the crop and flip, so augmentation does not depend on which worker runs
    it. Items are ``(image, failures)``: a (3, size, size) float tensor in [0, 1],
    and how many files failed to decode and were replaced on the way (usually 0).
    """

    def __init__(self, files: Sequence[Path], size: int):
        if not files:
            raise UserError("no training images left (all were held out or unreadable)")
        self.files = list(files)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, sample_seed = key
        rng = np.random.default_rng(sample_seed)
        failures = 0
        for _ in range(MAX_RETRIES):
            try:
                rgb = load_rgb(self.files[index], self.size, self.size * MAX_SCALE)
                return to_chw_tensor(random_crop(rgb, self.size, rng)), failures
            except _UNREADABLE:
                failures += 1
                index = int(rng.integers(len(self.files)))
        raise UserError(f"{MAX_RETRIES} training images in a row failed to decode; "
                        "the data folder looks badly damaged")


def load_previews(files: Sequence[Path], size: int) -> torch.Tensor | None:
    """(N, 3, size, size) center crops of those ``files`` that decode, for the preview grid; None if none do."""
    crops = []
    for path in files:
        try:
            crops.append(to_chw_tensor(center_crop(load_rgb(path, size, size), size)))
        except _UNREADABLE:
            continue
    return torch.stack(crops) if crops else None


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields, for steps ``start_step .. end_step - 1``, this rank's share of each global batch.

    Sample number k = step * global_batch + rank * batch_size + i walks through a
    new permutation every epoch; the permutation depends only on (seed, epoch) and
    each sample's augmentation seed only on (seed, k). Resuming at any step just
    starts this sampler there.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, start_step: int, end_step: int,
                 rank: int = 0, world_size: int = 1):
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.end_step = end_step
        self.rank = rank
        self.world_size = world_size
        self._epoch = -1
        self._order = np.arange(num_items)

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        global_batch = self.batch_size * self.world_size
        for step in range(self.start_step, self.end_step):
            first = step * global_batch + self.rank * self.batch_size
            yield [self.sample(k) for k in range(first, first + self.batch_size)]

    def sample(self, k: int) -> tuple[int, int]:
        """(dataset index, augmentation seed) of global sample number ``k``."""
        epoch, position = divmod(k, self.num_items)
        if epoch != self._epoch:
            self._order = np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(self.num_items)
            self._epoch = epoch
        sample_seed = int(np.random.SeedSequence([self.seed, k]).generate_state(1, np.uint64)[0] >> 1)
        return int(self._order[position]), sample_seed


def ignore_interrupts(worker_id: int) -> None:
    """DataLoader worker_init_fn: Ctrl-C reaches the whole process group, but only the
    main process should react (finish the step, save); workers must keep serving it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
