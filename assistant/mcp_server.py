"""`assistant mcp`: the notes as an MCP (Model Context Protocol) server over stdio.

Built on the official ``mcp`` SDK (``MCPServer``). Tools, each a call into the same query API
as the CLI and the web chat:

* ``search_notes(query, top_k)``: the passages that match, as ``assistant search --json``
  prints them (the ``sources`` list: file, line_start, line_end, text, score, ...);
* ``ask_notes(question, top_k)``: an answer with ``[n]`` citations checked against the notes,
  the JSON contract of ``assistant ask --json`` (a refusal has ``refused: true``);
* ``read_note(file, line_start, line_end)``: lines of an indexed note with their numbers;
  only notes inside the notes folder that the index holds (the web chat's viewer rule).

Client configuration (Claude Desktop, VS Code, Cursor, ... all take this shape)::

    {"mcpServers": {"notes": {"command": "assistant", "args": ["mcp", "--notes", "/home/me/notes"]}}}

The index is re-read when an ingest publishes a new one (``assistant ingest --watch`` beside
it keeps the answers current). Errors come back as tool errors with one line of text.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from .errors import UserError

if TYPE_CHECKING:
    from .settings import Settings

INSTRUCTIONS = ("Search and ask the user's study notes. Every answer of ask_notes cites file and lines "
                "([n] markers, checked against the notes); search_notes returns the passages; read_note shows "
                "the lines of a note, e.g. to check a citation. Notes may be in Chinese or English.")


def build_server(qa: Any):
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp_types import ToolAnnotations

    from .query import sources_json

    server = MCPServer("notes-assistant", instructions=INSTRUCTIONS)
    model_lock = threading.Lock()  # one generation at a time on the model
    read_only = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

    def call(fn):
        try:
            return fn()
        except UserError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=read_only)
    def search_notes(query: Annotated[str, Field(description="What to look for, in Chinese or English")],
                     top_k: Annotated[int, Field(ge=1, le=50, description="How many passages")] = 5,
                     ) -> list[dict[str, Any]]:
        """Retrieve the note passages that match a query (no LLM): file, line_start, line_end, text, score."""
        return call(lambda: sources_json(qa.search(query, top_k)))

    @server.tool(annotations=read_only)
    def ask_notes(question: Annotated[str, Field(description="The question, in Chinese or English")],
                  top_k: Annotated[int | None, Field(ge=1, le=50, description="Sources to retrieve")] = None,
                  ) -> dict[str, Any]:
        """Answer a question from the notes only. The answer's [n] markers point to `citations` (file, lines,
        quote); `refused` is true when the notes do not cover the question; `sources` lists what was retrieved."""
        def run():
            with model_lock:
                return qa.ask(question, top_k=top_k).to_json()

        return call(run)

    @server.tool(annotations=read_only)
    def read_note(file: Annotated[str, Field(description="The note's path inside the notes folder, "
                                                         "as in a citation's `file`")],
                  line_start: Annotated[int | None, Field(ge=1, description="First line (1-based)")] = None,
                  line_end: Annotated[int | None, Field(ge=1, description="Last line (inclusive)")] = None,
                  ) -> dict[str, Any]:
        """The numbered lines of an indexed note (the whole note, up to 400 lines, without line numbers given)."""
        from .note_reader import read_note_lines

        return call(lambda: read_note_lines(qa, file, line_start, line_end))

    return server


def serve(settings: Settings) -> None:
    from .query import NotesAssistant

    qa = NotesAssistant(settings, settings.notes_dir)
    qa.snapshot  # noqa: B018 - no index: the CLI reports it as one line before serving
    build_server(qa).run("stdio")
