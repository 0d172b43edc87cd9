"""Hugging Face → GGUF conversion and quantization with the llama.cpp that llama-cpp-python bundles.

llama.cpp's converter (``convert_hf_to_gguf.py`` with its ``conversion`` and ``gguf-py`` folders)
ships in the llama-cpp-python source distribution, not in its wheel. :func:`converter_dir` finds it
in ``$GUARDSDK_LLAMA_CPP_SRC`` or the cache, or fetches the sdist of the installed version once with
pip (a package download, never model weights). Quantization uses ``llama_model_quantize``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

from guardsdk.errors import BackendError

_VENDOR = "vendor/llama.cpp/"
_NEEDED = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def cache_dir() -> Path:
    """Where guardsdk caches tools and throwaway models (``$XDG_CACHE_HOME/guardsdk``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "guardsdk"


def converter_dir(fetch: bool = True) -> Path:
    """The folder holding llama.cpp's converter that matches the installed llama-cpp-python."""
    override = os.environ.get("GUARDSDK_LLAMA_CPP_SRC")
    if override:
        return Path(override)
    version = metadata.version("llama_cpp_python")
    target = cache_dir() / f"llama.cpp-{version}"
    if (target / "convert_hf_to_gguf.py").is_file():
        return target
    if not fetch:
        raise BackendError(f"llama.cpp converter {version} not found in {target}")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"llama-cpp-python=={version}", "-d", tmp],
            check=True,
        )  # fmt: skip
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        partial = target.with_name(target.name + ".partial")
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                _, _, inner = member.name.partition("/")
                if inner.startswith(_VENDOR) and inner[len(_VENDOR) :].startswith(_NEEDED):
                    member.name = inner[len(_VENDOR) :]
                    archive.extract(member, partial, filter="data")
        partial.rename(target)
    return target


def convert_hf_to_gguf(hf_dir: str | os.PathLike[str], outfile: str | os.PathLike[str], outtype: str = "f16") -> Path:
    """Convert a Hugging Face model folder to GGUF (``outtype``: f32, f16, bf16 or q8_0)."""
    source = converter_dir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(source / "gguf-py"), str(source)]))
    command = [
        sys.executable,
        str(source / "convert_hf_to_gguf.py"),
        str(hf_dir),
        "--outfile",
        str(outfile),
        "--outtype",
        outtype,
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BackendError(f"GGUF conversion failed:\n{result.stderr[-4000:]}")
    return Path(outfile)


def quantize(
    source: str | os.PathLike[str], dest: str | os.PathLike[str], qtype: str = "Q4_K_M", threads: int | None = None,
    allow_requantize: bool = False,
) -> Path:  # fmt: skip
    """Quantize a GGUF file with llama.cpp (``qtype`` e.g. Q8_0, Q4_K_M); ``allow_requantize`` starts from an
    already quantized file (each step loses precision)."""
    import llama_cpp

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{qtype.upper()}", None)
    if ftype is None:
        raise ValueError(f"unknown quantization type {qtype!r}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or os.cpu_count() or 1
    params.allow_requantize = allow_requantize
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(dest).encode(), params)
    if status != 0:
        raise BackendError(f"quantization of {source} to {qtype} failed with status {status}")
    return Path(dest)


#: Types the converter writes directly; the others are quantized from an F16 file.
_DIRECT = {"F32": "f32", "F16": "f16", "BF16": "bf16", "Q8_0": "q8_0"}


def hf_to_gguf(
    source: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, quant: str = "Q4_K_M"
) -> Path:
    """A Hugging Face model (a folder, or a hub id fetched with ``huggingface_hub``) as one GGUF file of type
    ``quant``; ``out`` defaults to ``<name>-<quant>.gguf`` in the current folder. Refuses to overwrite."""
    quant = quant.upper()
    folder = Path(source)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(str(source)))
        except Exception as exc:
            raise BackendError(f"{source} is not a folder and could not be fetched from the hub: {exc}") from exc
    target = Path(out) if out is not None else Path(f"{folder.name}-{quant}.gguf")
    if target.exists():
        raise FileExistsError(f"{target} exists; give another --out")
    if quant in _DIRECT:
        return convert_hf_to_gguf(folder, target, _DIRECT[quant])
    with tempfile.TemporaryDirectory(dir=target.parent.resolve()) as tmp:
        f16 = convert_hf_to_gguf(folder, Path(tmp) / "model-F16.gguf", "f16")
        return quantize(f16, target, quant)


if __name__ == "__main__":  # python -m guardsdk.tools.gguf_export: fetch the converter ahead of time
    print(converter_dir())
