"""One clear line for each way the answering model can fail."""

from __future__ import annotations

from typing import Any


def explain_llm_error(exc: BaseException, llm: Any) -> str:
    import httpx

    host = getattr(llm, "base_url", None)
    model = getattr(llm, "model", None)
    timeout = getattr(llm, "request_timeout", None)
    try:
        import ollama

        if isinstance(exc, ollama.ResponseError):
            if exc.status_code == 404 or "not found" in str(exc.error).lower():
                return f"Ollama has no model '{model}': run `ollama pull {model}`"
            return f"Ollama returned an error ({exc.status_code}): {str(exc.error).strip()[:200]}"
    except ImportError:  # pragma: no cover - ollama is a dependency
        pass
    if isinstance(exc, httpx.ConnectError) or isinstance(exc, ConnectionRefusedError):
        return f"Ollama is not running at {host}: start it with `ollama serve`"
    if isinstance(exc, httpx.TimeoutException) or isinstance(exc, TimeoutError):
        return (f"Ollama did not answer within {timeout:.0f} s: raise request_timeout "
                f"(--timeout / NOTES_ASSISTANT_REQUEST_TIMEOUT) or use a smaller model") if timeout else \
            "the model timed out"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, ConnectionError)):
        return f"the connection to Ollama at {host} was lost while answering"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"Ollama returned HTTP {exc.response.status_code}"
    return f"the model failed: {type(exc).__name__}: {str(exc).strip()[:200]}"
