"""One settings object: defaults < config file < environment < flags.

The config file is TOML, found at ``$NOTES_ASSISTANT_CONFIG`` or
``<user config dir>/notes-assistant/config.toml``. Environment variables are
``NOTES_ASSISTANT_<FIELD>`` (``OLLAMA_HOST`` is honoured as well). Flags are passed
to :func:`load_settings` as keyword overrides.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

APP = "notes-assistant"
REPO_ROOT = Path(__file__).resolve().parent.parent


def default_config_file() -> Path:
    return Path(os.environ.get("NOTES_ASSISTANT_CONFIG") or Path(platformdirs.user_config_dir(APP)) / "config.toml")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOTES_ASSISTANT_", extra="ignore", validate_default=True)

    # where things live
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir(APP)),
                           description="Index (Chroma + keyword index) lives here")
    model_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_cache_dir(APP)) / "models",
                            description="Assembled GGUF model files")
    notes_dir: Path | None = Field(default=None, description="Notes folder; default: the last one ingested")
    prompts_dir: Path | None = Field(default=None, description="A folder of your own prompt files (a file missing "
                                     "there falls back to the packaged one); default: the packaged prompts")
    chroma_url: str | None = Field(default=None, description="http://HOST:PORT of a `chroma run` server")

    # models
    llm: str = Field(default="auto", description="auto | embedded | embedded:1.5b | ollama:MODEL")
    embed: str = Field(default="e5", description="e5 (embedded multilingual-e5-small) | ollama:MODEL")
    ollama_host: str = Field(default="http://localhost:11434",
                             validation_alias=AliasChoices("NOTES_ASSISTANT_OLLAMA_HOST", "OLLAMA_HOST", "ollama_host"))
    ollama_model: str = Field(default="qwen2.5:7b", description="Model `auto` looks for on Ollama")
    context_window: int = Field(default=8192, ge=512, description="num_ctx sent to Ollama")
    request_timeout: float = Field(default=120.0, gt=0)
    keep_alive: str = Field(default="5m")
    temperature: float = Field(default=0.1, ge=0.0, le=2.0)
    max_answer_tokens: int = Field(default=320, ge=16)
    embedded_context_window: int = Field(default=4096, ge=512)
    threads: int = Field(default=0, ge=0, description="llama.cpp threads; 0 = all cores")

    # ingest
    chunk_chars: int = Field(default=400, ge=80, description="Prose chunks are merged/cut to about this size")
    chunk_chars_en: int = Field(default=800, ge=80, description="The same for notes written in English (a Chinese "
                                "character carries as much as two or three English ones)")
    max_note_mb: float = Field(default=10.0, gt=0, description="Notes larger than this are skipped with a warning "
                               "(a 50 MB note would take hours to embed)")
    embed_headings: bool = Field(default=True, description="Embed and keyword-index each chunk with its heading path")

    # retrieval and answers
    top_k: int = Field(default=5, ge=1, le=50, description="Sources shown")
    prompt_passages: int = Field(default=4, ge=1, le=20, description="Passages given to the LLM")
    prompt_chars: int = Field(default=2400, ge=200, description="Budget of passage characters in the prompt")
    merge_chars: int = Field(default=1200, ge=0, description="Adjacent chunks of one section are merged into one "
                             "prompt passage up to this size; 0 = never")
    expand_passages: int = Field(default=1, ge=0, le=20, description="The best N prompt passages get their "
                                 "section neighbours while the budget allows")
    vector_weight: float = Field(default=1.0, ge=0)
    keyword_weight: float = Field(default=1.0, ge=0)
    sentence_weight: float = Field(default=1.0, ge=0, description="Weight (times vector_weight) of the chunks "
                                   "ranked by their best sentence's vector beside the chunks' own vectors; 0 = off")
    char_weight: float = Field(default=0.0, ge=0, description="Weight of the Chinese character n-gram index "
                               "in the fusion (it catches what word segmentation misses)")
    rrf_k: int = Field(default=60, ge=1)
    term_expansion: bool = Field(default=False, description="Add the other-language names of a question's terms "
                                 "(mined from the notes, e.g. 自注意力（self-attention）) to its keyword search; off: "
                                 "it won on the tune part, lost on the report part (benchmarks/README.md)")
    refuse_unknown_names: bool = Field(default=True, description="Refuse a question that names something the notes "
                                       "never write (AlexNet, ONNX, GPT-2), saying which name they lack")
    translate_questions: bool = Field(default=True, description="A Chinese question over English notes is also "
                                      "searched with its words looked up in CC-CEDICT (keyword and dense side)")
    translate_to_chinese: bool = Field(default=False, description="The same for English questions over Chinese "
                                       "notes; off: measured mixed on the tune part (benchmarks/README.md)")
    code_penalty: float = Field(default=0.0, ge=0, le=1, description="Fused-score factor for code chunks "
                                "when the question is not about code")
    question_penalty: float = Field(default=0.5, ge=0, le=1, description="Fused-score factor for passages "
                                    "that are mostly questions (exercise lists)")
    candidates: int = Field(default=30, ge=5, description="Hits taken from each retriever before fusion")
    answer_style: str = Field(default="auto", pattern="^(auto|extract|phrase|passages)$",
                              description="extract: the best note sentences, no model; phrase: the model rewords "
                              "the few best sentences; passages: the model reads whole passages; auto: by model")
    evidence_sentences: int = Field(default=3, ge=1, le=12, description="Best sentences the phrase style shows")
    # the evidence gate (measured on held-apart questions: e5 similarities of off-topic
    # Chinese questions reach 0.85, so similarity alone cannot gate; term overlap can)
    min_overlap: float = Field(default=0.5, description="Evidence gate: share of question terms found, alone")
    min_overlap_weak: float = Field(default=0.25, description="Evidence gate: overlap needed with a close passage")
    min_similarity: float = Field(default=0.86, description="Evidence gate: 'close' dense similarity (Chinese question)")
    min_similarity_en: float = Field(default=0.80, description="Evidence gate: 'close' similarity (English question)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=default_config_file())
        return (init_settings, env_settings, toml)

    # derived -------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return default_config_file()


def load_settings(**overrides: Any) -> Settings:
    """Settings with flag values (``None`` means the flag was not given) on top."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**given)
