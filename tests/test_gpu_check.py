"""The GPU check's own logic, on the CPU: the seek verdict and the offline bundles it unpacks."""
import hashlib
import importlib.util
import io
import lzma
import tarfile
from pathlib import Path

import pytest

from ascnet.bench.gpu_check import seek_verdict

# a standalone script (it runs before ascnet imports): loaded from its file, as gpu_check.sh runs it
OFFLINE = Path(__file__).resolve().parents[1] / "ascnet" / "bench" / "offline.py"
_spec = importlib.util.spec_from_file_location("offline", OFFLINE)
offline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(offline)
BundleError, unpack = offline.BundleError, offline.unpack


def test_seek_verdict_judges_the_end_against_the_whole_file():
    # DALI 2.4's CPU decoder here: the last 16 of 600 frames 33 ms, the whole file 211 ms: it seeks,
    # although the end costs over 3x the start
    assert seek_verdict(0.010, 0.033, 0.211).startswith("seeks")
    assert seek_verdict(0.010, 0.200, 0.211).startswith("decodes from frame 0")


def _bundle(folder: Path, files: dict, parts: int = 2) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    packed = lzma.compress(raw.getvalue())
    folder.mkdir(parents=True)
    step = -(-len(packed) // parts)
    sums = []
    for i in range(parts):
        name = f"part-a{'abcdefgh'[i]}"
        chunk = packed[i * step:(i + 1) * step]
        (folder / name).write_bytes(chunk)
        sums.append(f"{hashlib.sha256(chunk).hexdigest()}  {name}")
    (folder / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    (folder / "MANIFEST.txt").write_text("python: cp312  linux x86_64   compression: xz\n")
    return folder


def test_a_bundle_unpacks_checked_and_once(tmp_path):
    bundle = _bundle(tmp_path / "pkg", {"mod_a/__init__.py": "X = 1\n", "mod_b.py": "Y = 2\n" * 500})
    target = unpack(bundle, tmp_path / "site")
    assert (target / "mod_a/__init__.py").read_text() == "X = 1\n" and (target / "mod_b.py").stat().st_size == 3000
    (target / "mod_b.py").write_text("changed")
    unpack(bundle, target)  # same bundle: left as it is
    assert (target / "mod_b.py").read_text() == "changed"


def test_a_damaged_or_missing_part_is_named(tmp_path):
    bundle = _bundle(tmp_path / "pkg", {"m.py": "Z = 3\n" * 100})
    part = bundle / "part-ab"
    good = part.read_bytes()
    part.write_bytes(good[:-1])
    with pytest.raises(BundleError, match=r"part-ab: checksum mismatch .* copy it again"):
        unpack(bundle, tmp_path / "site")
    part.unlink()
    with pytest.raises(BundleError, match=r"part-ab: part missing; carry every part"):
        unpack(bundle, tmp_path / "site")
