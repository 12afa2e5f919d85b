"""Label-free probes: question cleaning, staleness, warnings, storage, and the ingest hook."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag import Index
from rag.errors import IndexFormatError
from rag.eval.probes import (
    FILE_NAME,
    PROMPT,
    Probe,
    ProbeFile,
    ProbeResult,
    ProbeSet,
    clean_question,
    compare,
    current_span,
    spans_overlap,
)
from rag.settings import Settings
from rag.store import Store

BATTERY = (
    "# Battery\n\nThe Kestrel K9 battery lasts 41 months on two AA lithium cells. Cold "
    "weather below minus twenty degrees shortens this to about 30 months, and the console "
    "shows a low-battery symbol four weeks before the cells run out.\n"
)
RADIO = (
    "The K9 radio link uses the 868 MHz band in Europe and 915 MHz in North America. The "
    "sensor array sends a packet every 12 seconds; walls and metal roofs reduce the range "
    "from 300 metres in the open to about 100 metres.\n"
)
MAST = (
    "# Mounting\n\nMount the K9 mast with the M6 stainless bracket on a vertical pole of 25 to "
    "50 millimetres. Point the array's north arrow to true north and keep the rain funnel "
    "level, at least one metre above any roof.\n"
)


# --- pure logic -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("What does error E07 mean?", "What does error E07 mean?"),
        ('1. "How long does the K9 battery last?"\nIt lasts 41 months.',
         "How long does the K9 battery last?"),
        ("**Question 2:** Which band does the K9 radio use? (868 MHz)",
         "Which band does the K9 radio use?"),
        ("Question:\n- What bracket holds the K9 mast?", "What bracket holds the K9 mast?"),
        ("The passage describes the K9 battery.", None),  # not a question
        ("Why?", None),  # too short to search for
        ("", None),
    ],
)  # fmt: skip
def test_question_cleaning_keeps_one_question_or_discards(raw, expected):
    assert clean_question(raw) == expected


def test_span_overlap_is_half_open():
    assert spans_overlap(0, 10, 9, 20)
    assert spans_overlap(5, 6, 0, 100) and spans_overlap(0, 100, 5, 6)
    assert not spans_overlap(0, 10, 10, 20) and not spans_overlap(10, 20, 0, 10)


def result(recall: float, *, chunk: int = 254, generation: int = 1, **changes) -> ProbeResult:
    config = {
        "config_hash": f"h{chunk}",
        "chunk": {"max_tokens": chunk, "overlap": 0.15},
        "embedder": "minilm (abc)",
        "retrieval": {"mode": "hybrid", "fusion": "zscore"},
    }
    base = ProbeResult(k=5, recall_at_1=recall / 2, recall_at_k=recall, mrr=recall / 2,
                       count=20, stale=0, config=config, probe_set="p1", generation=generation,
                       documents=18, measured_at=1.0)  # fmt: skip
    return replace(base, **changes)


def test_compare_names_a_chunk_size_change():
    warning = compare(result(0.82), result(0.64, chunk=128, generation=2, changed=18))
    assert warning == (
        "recall@5 fell from 0.82 to 0.64 after changing chunk size (max_tokens 254 → 128)"
    )


def test_compare_names_a_reingest_and_its_document_count():
    warning = compare(result(0.9), result(0.7, generation=2, changed=12))
    assert warning == "recall@5 fell from 0.90 to 0.70 after re-ingest (12 documents changed)"


def test_compare_names_retrieval_changes_and_new_stale_probes():
    old = result(0.9)
    new = result(0.7, stale=3)
    new.config = {**new.config, "retrieval": {"mode": "hybrid", "fusion": "rrf"}}
    assert compare(old, new) == (
        "recall@5 fell from 0.90 to 0.70 after changing retrieval (fusion zscore → rrf) "
        "(3 of the probes are stale now)"
    )


def test_compare_stays_quiet_within_tolerance_on_gains_and_across_k():
    assert compare(None, result(0.1)) is None
    assert compare(result(0.85), result(0.80)) is None  # exactly the 0.05 tolerance
    assert compare(result(0.6), result(0.9)) is None
    assert compare(result(0.9), result(0.5, k=10)) is None
    assert compare(result(0.85), result(0.80), tolerance=0.01) is not None


def sample_file() -> ProbeFile:
    probe = Probe("How long does the K9 battery last?", "/docs/battery.md", 10, 120, None,
                  "a" * 64, "b" * 64, "tiny.gguf")  # fmt: skip
    probe_set = ProbeSet(3, 1, "tiny.gguf", PROMPT, [probe], created_at=1.0)
    return ProbeFile(probe_set, [result(0.8), result(0.7, generation=2, changed=1)])


def test_probe_file_round_trips_and_leaves_no_temp_file(tmp_path):
    sample_file().save(tmp_path)
    loaded = ProbeFile.load(tmp_path)
    assert loaded == sample_file()
    cached = loaded.probe_set
    assert cached is not None and cached.matches(3, 1, None) and cached.matches(3, 1, "tiny.gguf")
    assert not cached.matches(3, 1, "qwen.gguf") and not cached.matches(0, 1, None)
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    sample_file().save(tmp_path)
    before = (tmp_path / FILE_NAME).read_bytes()
    broken = sample_file()
    broken.history.append(result(0.1))
    broken.history[-1].config = {"not json": object()}  # json.dump fails half-way through
    with pytest.raises(TypeError):
        broken.save(tmp_path)
    assert (tmp_path / FILE_NAME).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]


def test_unreadable_probe_file_raises_an_actionable_error(tmp_path):
    (tmp_path / FILE_NAME).write_text('{"version": 1, "history": [{"k": 5}]}')
    with pytest.raises(IndexFormatError, match="--regenerate"):
        ProbeFile.load(tmp_path)
    assert ProbeFile.load(tmp_path / "missing") == ProbeFile()


# --- with the real embedder -----------------------------------------------------------------


def make_docs(root: Path) -> Path:
    root.mkdir()
    (root / "battery.md").write_text(BATTERY)
    (root / "radio.txt").write_text(RADIO)
    (root / "mast.md").write_text(MAST)
    return root


def write_probes(index: Index, questions: dict[str, str]) -> list[Probe]:
    """Store hand-written probes (file name -> question) as if the model had written them."""
    store = Store(index.path)
    manifest = store.manifest()
    probes = []
    for name, question in questions.items():
        chunk = next(c for c in store.iter_chunks() if c.key.endswith(name))
        probes.append(Probe(question, chunk.key, chunk.start, chunk.end, chunk.page,
                            hashlib.sha256(chunk.text.encode()).hexdigest(),
                            manifest[chunk.key][0], "hand.gguf"))  # fmt: skip
    ProbeFile(ProbeSet(0, len(probes), "hand.gguf", PROMPT, probes)).save(index.path)
    return probes


QUESTIONS = {
    "battery.md": "How long does the Kestrel K9 battery last on AA lithium cells?",
    "radio.txt": "Which frequency band does the K9 radio use in Europe?",
}


@pytest.mark.model
def test_stale_probes_are_detected_and_moved_text_is_followed(tmp_path, embedder):
    docs = make_docs(tmp_path / "docs")
    index = Index(tmp_path / "idx", embedder=embedder)
    index.ingest([docs])
    battery, radio = write_probes(index, QUESTIONS)
    store = Store(index.path)
    assert current_span(battery, store, store.manifest()) == (battery.start, battery.end)

    (docs / "battery.md").write_text("Preface added above.\n\n" + BATTERY)  # text moves down
    (docs / "radio.txt").write_text("The K9 radio was removed from this product.\n")
    index.ingest([docs])
    store = Store(index.path)
    moved = current_span(battery, store, store.manifest())
    assert moved is not None and moved[0] > battery.start
    assert current_span(radio, store, store.manifest()) is None

    report = index.probe(n=2, seed=0)
    assert not report.generated and (report.result.stale, report.result.count) == (1, 1)
    assert report.result.recall_at_k == 1.0


@pytest.mark.model
def test_reingest_remeasures_probes_and_warns_when_recall_falls(tmp_path, embedder):
    docs = make_docs(tmp_path / "docs")
    index = Index(tmp_path / "idx", embedder=embedder)
    index.ingest([docs])
    write_probes(index, QUESTIONS)
    first = index.probe(n=2, k=5, seed=0)
    assert first.result.recall_at_1 == 1.0 and first.previous is None and first.warning is None
    assert "_generator" not in index.__dict__  # cached probes: the model was never loaded

    unchanged = index.ingest([docs])
    assert unchanged.probe_recall is None and len(ProbeFile.load(index.path).history) == 1

    for i in range(6):  # decoys repeating the questions push the sources out of the top 5
        (docs / f"decoy{i}.txt").write_text(" ".join(QUESTIONS.values()) * 3)
    result = CliRunner().invoke(_app(), ["ingest", str(docs), "--index", str(index.path)])
    assert result.exit_code == 0, result.output
    assert "warning: recall@5 fell from 1.00 to 0.00 after re-ingest (6 documents changed)" in (
        result.stderr
    )
    assert "probes: recall@5 0.000 (was 1.000)" in result.stdout

    shown = CliRunner().invoke(_app(), ["eval", "probes", "--index", str(index.path), "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert {"index", "probes", "stale", "k", "recall@1", "recall@k", "mrr", "previous",
            "warning"} <= data.keys()  # fmt: skip
    assert (data["probes"], data["k"], data["recall@k"], data["generated"]) == (2, 5, 0.0, False)
    assert data["previous"]["recall@k"] == 0.0 and data["warning"] is None
    assert len(data["missed"]) == 2
    history = ProbeFile.load(index.path).history
    assert [h.recall_at_k for h in history] == [1.0, 0.0, 0.0]
    assert history[1].changed == 6 and history[1].generation > history[0].generation


def _app():
    from rag_cli.main import app

    return app


# --- with the real tiny generator -----------------------------------------------------------


@pytest.mark.llm
def test_generated_probes_are_cached_measured_and_track_chunk_changes(tmp_path, embedder):
    from rag.models import resolve_model

    try:
        resolve_model("tiny")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"tiny generator not installed: {exc}")
    docs = make_docs(tmp_path / "docs")
    index = Index(tmp_path / "idx", embedder=embedder)
    index.ingest([docs])
    first = index.probe(n=2, k=3, seed=7, model="tiny")
    probes = first.probe_set.probes
    assert first.generated and 1 <= len(probes) <= 2
    store = Store(index.path)
    chunks = {(c.key, c.start, c.end) for c in store.iter_chunks()}
    for probe in probes:
        assert probe.question.endswith("?") and (probe.path, probe.start, probe.end) in chunks
        assert probe.model == resolve_model("tiny").name and probe.prompt == PROMPT
    assert first.result.count == len(probes) and first.result.stale == 0
    cached = json.loads((index.path / FILE_NAME).read_text())["probe_set"]

    again = Index(index.path, embedder=embedder).probe(n=2, k=3, seed=7, model="tiny")
    assert not again.generated and again.previous is not None
    assert json.loads((index.path / FILE_NAME).read_text())["probe_set"] == cached
    assert again.result.recall_at_k == first.result.recall_at_k  # same probes, same index

    small = Settings().replace(**{"chunk.max_tokens": 24})
    report = Index(index.path, embedder=embedder, settings=small).ingest([docs])
    assert report.updated == 3 and report.probe_recall is not None
    history = ProbeFile.load(index.path).history
    assert len(history) == 3 and history[-1].k == 3
    assert history[0].config["chunk"]["max_tokens"] == 254
    assert history[-1].config["chunk"]["max_tokens"] == 24
    assert history[-1].config["config_hash"] != history[0].config["config_hash"]
    fell = history[1].recall_at_k - history[2].recall_at_k > 0.05
    warned = [w for w in report.warnings if "fell" in w]
    assert bool(warned) == fell
    if fell:
        assert "after changing chunk size (max_tokens 254 → 24)" in warned[0]
