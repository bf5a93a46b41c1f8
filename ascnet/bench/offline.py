"""Unpack wheel bundles carried to a machine without network: `python ascnet/bench/offline.py unpack PARTS TARGET`.

A bundle is a folder of parts (`part-aa`, `part-ab`, ...) of one compressed tar of a
`pip install --target` tree, with `SHA256SUMS` over the parts and a `MANIFEST.txt` whose
first line names the compression (xz or zstd). Standard library only (the GPU check runs it
before anything is importable); an xz bundle needs nothing else, a zstd one the `zstd` command.
Unpacking is skipped when TARGET already holds this bundle (same checksums).
"""
from __future__ import annotations

import hashlib
import lzma
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path


class BundleError(RuntimeError):
    """A bundle that is incomplete or damaged; the message names the part and the fix."""


def parts(bundle: Path) -> list[tuple[str, Path]]:
    """(sha256, path) of each part in order, checked against SHA256SUMS."""
    sums = bundle / "SHA256SUMS"
    if not sums.is_file():
        raise BundleError(f"{bundle}: no SHA256SUMS; copy the whole bundle folder")
    out = []
    for line in sums.read_text().split("\n"):
        if not line.strip():
            continue
        digest, name = line.split()
        path = bundle / name
        if not path.is_file():
            raise BundleError(f"{path}: part missing; carry every part of the bundle before unpacking")
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != digest:
            raise BundleError(f"{path}: checksum mismatch (damaged or partly copied); copy it again")
        out.append((digest, path))
    return out


class _Joined:
    """The parts read one after the other as one stream."""

    def __init__(self, paths):
        self.paths, self.f = list(paths), None

    def read(self, n: int = -1) -> bytes:
        while True:
            if self.f is None:
                if not self.paths:
                    return b""
                self.f = open(self.paths.pop(0), "rb")
            data = self.f.read(n)
            if data:
                return data
            self.f.close()
            self.f = None


def unpack(bundle: str | Path, target: str | Path) -> Path:
    """Check, join, decompress and untar a bundle into `target` (created); returns `target`."""
    bundle, target = Path(bundle), Path(target)
    checked = parts(bundle)
    stamp = target / ".bundle-sha256"
    key = ",".join(d for d, _ in checked)
    if stamp.is_file() and stamp.read_text() == key:
        return target
    manifest = (bundle / "MANIFEST.txt").read_text() if (bundle / "MANIFEST.txt").is_file() else ""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    joined = _Joined(p for _, p in checked)
    if "compression: xz" in manifest:
        stream = lzma.LZMAFile(joined)
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            tar.extractall(target, filter="tar" if hasattr(tarfile, "data_filter") else None)
    else:
        proc = subprocess.Popen(["zstd", "-dc", "--long=27", "-q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            import threading

            feed = threading.Thread(target=lambda: (shutil.copyfileobj(joined, proc.stdin, 1 << 20), proc.stdin.close()))
            feed.start()
            tar.extractall(target, filter="tar" if hasattr(tarfile, "data_filter") else None)
            feed.join()
        if proc.wait() != 0:
            raise BundleError(f"{bundle}: zstd failed to decompress it")
    stamp.write_text(key)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "unpack":
        sys.exit("usage: python ascnet/bench/offline.py unpack PARTS_DIR TARGET_DIR")
    try:
        print(unpack(sys.argv[2], sys.argv[3]))
    except BundleError as e:
        sys.exit(f"offline: {e}")
