"""The answering model behind LlamaIndex's LLM interface.

``embedded``            Qwen2.5-Coder GGUF in-process through ``llama-index-llms-llama-cpp``
``ollama:MODEL``        a model served by Ollama through ``llama-index-llms-ollama``
``auto`` (default)      Ollama when it answers and has the configured model, else embedded
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import LLMUnavailableError, ModelError


@dataclass
class LoadedLLM:
    llm: Any  # a llama_index LLM
    name: str  # "embedded:qwen2.5-coder-0.5b" | "ollama:qwen2.5:7b"
    kind: str  # embedded | ollama
    context_window: int
    tokenizer: Any = None  # callable text -> token count, when the model offers one

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is not None:
            return self.tokenizer(text)
        return estimate_tokens(text)


def estimate_tokens(text: str) -> int:
    """A safe over-estimate for models whose tokenizer we cannot call (Ollama):
    about one token per CJK character and one per three other characters."""
    cjk = sum(1 for ch in text if "\u3400" <= ch <= "\u9fff")
    return cjk + (len(text) - cjk) // 3 + 8


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


_EMBEDDED_CACHE: dict[tuple, LoadedLLM] = {}


def load_embedded(settings: Any, choice: str = "embedded") -> LoadedLLM:
    from .models import gguf_path, resolve_gguf_name

    name = resolve_gguf_name(choice)
    key = (name, settings.embedded_context_window, settings.temperature, settings.max_answer_tokens, settings.threads)
    if key in _EMBEDDED_CACHE:
        return _EMBEDDED_CACHE[key]
    path = gguf_path(name, settings.model_dir)
    from llama_index.llms.llama_cpp import LlamaCPP

    import os

    threads = settings.threads or os.cpu_count() or 2
    try:
        llm = LlamaCPP(
            model_path=str(path),
            temperature=settings.temperature,
            max_new_tokens=settings.max_answer_tokens,
            context_window=settings.embedded_context_window,
            generate_kwargs={"stop": ["<|im_end|>", "<|endoftext|>"], "top_p": 0.9, "repeat_penalty": 1.1},
            model_kwargs={"n_threads": threads, "n_threads_batch": threads, "n_batch": 512, "verbose": False},
            messages_to_prompt=chatml,
            completion_to_prompt=_completion_chatml,
            verbose=False,
        )
    except ValueError as exc:
        raise ModelError(f"cannot load the embedded model {path}: {exc}") from None
    model = llm._model

    def count(text: str) -> int:
        return len(model.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    loaded = LoadedLLM(llm, f"embedded:{name}", "embedded", settings.embedded_context_window, count)
    _EMBEDDED_CACHE[key] = loaded
    return loaded


def ollama_models(host: str, timeout: float = 1.0) -> list[str] | None:
    """Names of the models Ollama has pulled, or None when it does not answer."""
    try:
        with urllib.request.urlopen(host.rstrip("/") + "/api/tags", timeout=timeout) as r:
            data = json.loads(r.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return [m.get("name") or m.get("model") for m in data.get("models", [])]


def _has_model(names: list[str], model: str) -> bool:
    want = model if ":" in model else model + ":latest"
    return any(n == model or n == want for n in names)


def load_ollama(settings: Any, model: str, check: bool = True) -> LoadedLLM:
    host = normalize_host(settings.ollama_host)
    if check:
        names = ollama_models(host, timeout=min(5.0, settings.request_timeout))
        if names is None:
            raise LLMUnavailableError(f"Ollama is not running at {host}: start it with `ollama serve`")
        if not _has_model(names, model):
            raise ModelError(f"Ollama at {host} has no model '{model}': run `ollama pull {model}`")
    from llama_index.llms.ollama import Ollama

    llm = Ollama(
        model=model,
        base_url=host,
        request_timeout=settings.request_timeout,
        context_window=settings.context_window,  # sent as num_ctx: never the server's small default
        temperature=settings.temperature,
        keep_alive=settings.keep_alive,
        additional_kwargs={"num_predict": settings.max_answer_tokens},
    )
    return LoadedLLM(llm, f"ollama:{model}", "ollama", settings.context_window, None)


def normalize_host(host: str) -> str:
    host = host.strip()
    if not host.startswith(("http://", "https://")):
        host = "http://" + host
    if host.count(":") == 1:  # no port
        host += ":11434"
    return host.rstrip("/")


def load_llm(settings: Any) -> LoadedLLM:
    choice = (settings.llm or "auto").strip()
    if choice == "auto":
        host = normalize_host(settings.ollama_host)
        names = ollama_models(host, timeout=0.5)
        if names is not None and _has_model(names, settings.ollama_model):
            return load_ollama(settings, settings.ollama_model, check=False)
        return load_embedded(settings)
    if choice.startswith("embedded"):
        return load_embedded(settings, choice)
    if choice.startswith("ollama:"):
        return load_ollama(settings, choice.split(":", 1)[1])
    raise ModelError(f"unknown --llm '{choice}': use auto, embedded, embedded:1.5b or ollama:MODEL")


def describe_llm(settings: Any) -> dict[str, Any]:
    """What would answer, without loading it (for `assistant status`)."""
    choice = (settings.llm or "auto").strip()
    host = normalize_host(settings.ollama_host)
    names = ollama_models(host, timeout=0.5)
    info: dict[str, Any] = {"setting": choice, "ollama_host": host, "ollama_running": names is not None}
    if choice == "auto":
        if names is not None and _has_model(names, settings.ollama_model):
            info["answering"] = f"ollama:{settings.ollama_model}"
        else:
            info["answering"] = "embedded:qwen2.5-coder-0.5b"
            if names is not None:
                info["note"] = f"Ollama has no {settings.ollama_model}: `ollama pull {settings.ollama_model}` to use it"
    elif choice.startswith("ollama:"):
        info["answering"] = choice
        info["reachable"] = names is not None and _has_model(names, choice.split(":", 1)[1])
    else:
        from .models import resolve_gguf_name

        info["answering"] = f"embedded:{resolve_gguf_name(choice)}"
    return info
