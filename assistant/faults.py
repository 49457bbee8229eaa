"""One clear line for each way the answering model can fail."""

from __future__ import annotations

from typing import Any


def explain_llm_error(exc: BaseException, llm: Any) -> str:
    import httpx

    from .llm import OllamaStreamIncomplete

    host = getattr(llm, "base_url", None) or "the server"
    model = getattr(llm, "model", None)
    timeout = getattr(llm, "request_timeout", None)
    try:
        import ollama

        if isinstance(exc, ollama.ResponseError):
            error = " ".join(str(exc.error or "").split())[:200]
            low = error.lower()
            if exc.status_code == 404 or ("not found" in low and "model" in low):
                return f"Ollama has no model '{model}': run `ollama pull {model}`"
            if "does not support" in low:
                return f"Ollama cannot answer with '{model}' ({error}): choose a chat model, e.g. --llm ollama:qwen2.5:7b"
            if exc.status_code and exc.status_code > 0:
                return f"Ollama returned an error (HTTP {exc.status_code}): {error}"
            return f"Ollama reported an error while answering: {error}"  # an {"error"} line mid-stream
    except ImportError:  # pragma: no cover - ollama is a dependency
        pass
    if isinstance(exc, OllamaStreamIncomplete):
        return f"the connection to Ollama at {host} ended before the answer was finished"
    if isinstance(exc, (httpx.ConnectError, ConnectionRefusedError)) or (
            isinstance(exc, ConnectionError) and "Failed to connect to Ollama" in str(exc)):
        return f"Ollama is not running at {host}: start it with `ollama serve`"
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        if timeout:
            return (f"Ollama did not answer within {timeout:g} s: raise request_timeout "
                    f"(--timeout / NOTES_ASSISTANT_REQUEST_TIMEOUT) or use a smaller model")
        return "the model timed out"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, ConnectionError)):
        return f"the connection to Ollama at {host} was lost while answering"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"Ollama returned HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.HTTPError):
        return f"the request to Ollama at {host} failed: {type(exc).__name__}: {str(exc).strip()[:160]}"
    return f"the model failed: {type(exc).__name__}: {str(exc).strip()[:200]}"
