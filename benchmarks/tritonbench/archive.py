"""Suite 3: writing a 1 GiB model archive, our deterministic writer against GNU tar.

The weights are float32 values drawn from a seeded normal distribution (std 0.02, the scale of
trained layers): like real weights, their sign and exponent bits repeat and their mantissas look
random, so gzip gains little; the result records how little. Every tool writes the same folder
and ends with its output flushed to disk (our writer fsyncs; tar and pigz are followed by
`sync FILE`), reading its input from the page cache.

Besides the writer as model archives use it (`tritonbuild.archive.COMPRESS_LEVEL`, ISA-L level
1), the same writer runs at the level env tarballs use (`DENSE_COMPRESS_LEVEL`, 3), and both
levels also write a real packed python env, so that the cost of the faster level in archive size
is measured where it matters most (code and shared libraries).
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from tritonbench.common import (
    REPO_ROOT,
    BenchError,
    Settings,
    SuiteResult,
    Target,
    engine_environment,
    log,
    remove_tree,
    run_command,
    spread,
)
from tritonbench.models import build_env

__all__ = ["run_archive", "write_weights"]

_SEED = 20261122
_CHUNK_VALUES = 16 * 2**20  # 64 MiB of float32 per chunk
_OURS = "tritonbuild.archive"
_OURS_LEVEL_3 = "tritonbuild.archive, ISA-L level 3 (as for envs)"
# argv: source folder, output file, threads (0: all cores), ISA-L level (empty: as model archives
# are written: at their level, with the digests publishing needs computed in the same pass).
_OUR_WRITER = """
import sys
from pathlib import Path
import tritonbuild.archive as archive
level = int(sys.argv[4]) if sys.argv[4] else archive.COMPRESS_LEVEL
threads = int(sys.argv[3]) or None
summary = archive.write_tar_gz(archive.tree_entries(Path(sys.argv[1])), Path(sys.argv[2]),
                               threads=threads, level=level, digests=not sys.argv[4])
print(summary.sha256)
"""


def write_weights(folder: Path, total_bytes: int) -> Path:
    """A model folder holding `total_bytes` of seeded float32 weights and a small config."""
    step = folder / "classifier"
    (step / "1").mkdir(parents=True, exist_ok=True)
    (step / "config.pbtxt").write_text(
        'name: "classifier"\nbackend: "onnxruntime"\nmax_batch_size: 8\n', encoding="utf-8"
    )
    weights = step / "1" / "model.onnx"
    rng = np.random.default_rng(_SEED)
    remaining = total_bytes // 4
    with weights.open("wb") as handle:
        while remaining:
            count = min(remaining, _CHUNK_VALUES)
            values = rng.standard_normal(count, dtype=np.float32)
            values *= np.float32(0.02)
            values.tofile(handle)
            remaining -= count
    return weights


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _ours(
    settings: Settings, source: Path, output: Path, threads: int = 0, level: str = ""
) -> list[str]:
    return [str(settings.python), "-c", _OUR_WRITER, str(source), str(output), str(threads), level]


def _shell(pipeline: str, source: Path, output: Path) -> list[str]:
    """A tar command writing `output` from `source`, then flushed like our writer's fsync."""
    return ["sh", "-c", f'{pipeline} "$1" -C "$2" . && sync "$1"', "sh", str(output), str(source)]


def _write_once(settings: Settings, command: list[str], what: str) -> tuple[float, str]:
    return run_command(command, cwd=settings.scratch, env=engine_environment(), what=what)


def run_archive(settings: Settings) -> SuiteResult:
    size = settings.pick(2**30, 128 * 2**20)
    repeats = settings.pick(3, 2)
    result = SuiteResult("archive", settings.quick)
    root = settings.scratch / "archive"
    remove_tree(root)
    source = root / "model"
    outputs = root / "out"
    outputs.mkdir(parents=True)
    pigz = shutil.which("pigz")
    try:
        log(f"archive: writing {size / 2**20:.0f} MiB of float32 weights")
        write_weights(source, size)
        uncompressed = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
        files = {
            _OURS: outputs / "ours.tar.gz",
            _OURS_LEVEL_3: outputs / "ours-level-3.tar.gz",
            "tar czf": outputs / "tar.tar.gz",
            "tar -I pigz": outputs / "pigz.tar.gz",
        }
        tools: dict[str, list[str]] = {
            _OURS: _ours(settings, source, files[_OURS]),
            _OURS_LEVEL_3: _ours(settings, source, files[_OURS_LEVEL_3], level="3"),
            "tar czf": _shell("tar czf", source, files["tar czf"]),
        }
        if pigz:
            tools["tar -I pigz"] = _shell("tar -I pigz -cf", source, files["tar -I pigz"])
        seconds: dict[str, list[float]] = {name: [] for name in tools}
        sizes: dict[str, int] = {}
        our_hashes: list[str] = []
        for repeat in range(repeats):
            for name, command in tools.items():
                output = files[name]
                output.unlink(missing_ok=True)
                elapsed, printed = _write_once(settings, command, f"archive with {name}")
                seconds[name].append(elapsed)
                sizes[name] = output.stat().st_size
                if name == _OURS:
                    our_hashes.append(_sha256(output))
                    if printed.strip() != our_hashes[-1]:
                        raise BenchError("the writer's reported sha256 differs from the file's")
                log(f"archive: {name} run {repeat + 1}/{repeats}: {elapsed:.2f} s")
                output.unlink()
        log("archive: ours once more with a single thread, for the determinism check")
        single = outputs / "ours-1-thread.tar.gz"
        _write_once(settings, _ours(settings, source, single, threads=1), "archive, 1 thread")
        single_hash = _sha256(single)
        single.unlink()
        remove_tree(source)
        env_sizes = _env_levels(settings, root)

        per_tool: dict[str, Any] = {}
        for name, samples in seconds.items():
            median = sorted(samples)[len(samples) // 2]
            per_tool[name] = {
                "seconds": spread(samples, 2),
                "throughput_mb_s": round(uncompressed / 1e6 / median, 1),
                "output_bytes": sizes[name],
                "compressed_over_uncompressed": round(sizes[name] / uncompressed, 4),
            }
        speedup = _ratio(per_tool, "tar czf", _OURS)
        speedup_level_3 = _ratio(per_tool, "tar czf", _OURS_LEVEL_3)
        larger = sizes[_OURS] / sizes["tar czf"] - 1.0
        deterministic = len(set(our_hashes)) == 1 and single_hash == our_hashes[0]
        result.config = {
            "uncompressed_bytes": uncompressed,
            "weights": "float32, seeded normal(0, 0.02)",
            "repeats": repeats,
            "ours": "tritonbuild.archive.write_tar_gz as model archives use it (ISA-L level 1, "
            "1 MiB blocks, all cores, with the publish digests: SHA-256, part MD5s and CRC32s)",
            "ours_level_3": "the same writer at DENSE_COMPRESS_LEVEL = 3, as env tarballs use it",
            "pigz": pigz or "not installed",
        }
        result.results = {
            "tools": per_tool,
            "ours_speedup_over_tar_czf": round(speedup, 2),
            "ours_level_3_speedup_over_tar_czf": round(speedup_level_3, 2),
            "ours_size_vs_tar_czf_percent": round(100 * larger, 2),
            "ours_level_3_size_vs_tar_czf_percent": round(
                100 * (sizes[_OURS_LEVEL_3] / sizes["tar czf"] - 1.0), 2
            ),
            "ours_sha256_runs": sorted(set(our_hashes)),
            "ours_sha256_one_thread": single_hash,
            "deterministic": deterministic,
            "python_env_by_level": env_sizes,
        }
        if "tar -I pigz" in per_tool:
            result.results["ours_speedup_over_pigz"] = round(
                _ratio(per_tool, "tar -I pigz", _OURS), 2
            )
        result.targets = [
            Target(
                "throughput vs tar czf",
                ">= 10x",
                f"{speedup:.1f}x ({per_tool[_OURS]['throughput_mb_s']} vs "
                f"{per_tool['tar czf']['throughput_mb_s']} MB/s); at ISA-L level 3: "
                f"{speedup_level_3:.1f}x",
                speedup >= 10.0,
            ),
            Target(
                "size vs tar czf",
                "<= 1% larger",
                f"{100 * larger:+.2f}% ({sizes[_OURS]} vs {sizes['tar czf']} bytes)",
                larger <= 0.01,
            ),
            Target(
                "deterministic output",
                "same sha256 every run, any thread count",
                f"{len(set(our_hashes))} distinct sha256 over {repeats} runs; one-thread run "
                f"{'identical' if single_hash == our_hashes[0] else 'DIFFERENT'}",
                deterministic,
            ),
        ]
        return result
    finally:
        remove_tree(root)


def _ratio(per_tool: dict[str, Any], slower: str, faster: str) -> float:
    return float(per_tool[slower]["seconds"]["median"] / per_tool[faster]["seconds"]["median"])


def _env_levels(settings: Settings, root: Path) -> dict[str, Any]:
    """A real packed env (digit_classifier's), rewritten at level 3 and at level 1."""
    log("archive: a packed python env at ISA-L levels 3 and 1")
    packed = build_env(
        settings, REPO_ROOT / "models" / "digit_classifier" / "requirements.txt", root / "env.tgz"
    )
    tree = root / "env"
    with tarfile.open(packed, "r:gz") as tar:
        tar.extractall(tree, filter="data")
    unpacked = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file() and not p.is_symlink())
    levels: dict[str, Any] = {"unpacked_bytes": unpacked}
    for level in ("3", "1"):
        output = root / f"env-{level}.tar.gz"
        seconds, _ = _write_once(
            settings, _ours(settings, tree, output, level=level), f"env at level {level}"
        )
        levels[f"level_{level}"] = {"bytes": output.stat().st_size, "seconds": round(seconds, 2)}
    tar_output = root / "env-tar.tar.gz"
    seconds, _ = _write_once(settings, _shell("tar czf", tree, tar_output), "env with tar czf")
    levels["tar_czf"] = {"bytes": tar_output.stat().st_size, "seconds": round(seconds, 2)}
    for level in ("3", "1"):
        levels[f"level_{level}_size_vs_tar_czf_percent"] = round(
            100 * (levels[f"level_{level}"]["bytes"] / levels["tar_czf"]["bytes"] - 1.0), 2
        )
    levels["level_1_size_vs_level_3_percent"] = round(
        100 * (levels["level_1"]["bytes"] / levels["level_3"]["bytes"] - 1.0), 2
    )
    return levels
