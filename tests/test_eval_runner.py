"""The retrieval eval runner: caching, modes, reports, baselines and dataset errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.errors import ConfigError, DatasetError
from rag.eval.report import compare, load_report, render_markdown, write_report
from rag.eval.runner import DEFAULT_MODES, load_dataset, run_retrieval

DOCS = {
    "d0": ("Solar panels", "Photovoltaic cells turn sunlight into electricity on rooftops."),
    "d1": ("Honey bees", "Bees collect nectar from flowers and make honey in the hive."),
    "d2": ("Volcanoes", "Magma rises through the crust and erupts as lava and ash."),
    "d3": ("Coffee", "Roasted coffee beans are ground and brewed with hot water."),
    "d4": ("Glaciers", "Compacted snow becomes ice that flows slowly downhill."),
    "d5": ("Chess", "Each player moves sixteen pieces; checkmate ends the game."),
    "d6": ("Tides", "The moon's gravity pulls the oceans, causing high and low tides."),
    "d7": ("Bread", "Yeast ferments the dough so the loaf rises before baking."),
    "d8": ("Comets", "Icy comets grow glowing tails when they pass near the sun."),
    "d9": ("Rust", "Iron reacts with oxygen and water to form reddish rust."),
}
QUERIES = {
    "q1": ("how do bees make honey", "d1"),
    "q2": ("what causes ocean tides", "d6"),
    "q3": ("why does bread dough rise", "d7"),
    "q4": ("how is lava formed in a volcano", "d2"),
    "q5": ("what makes iron rust", "d9"),
}


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def make_beir(root: Path) -> Path:
    _jsonl(
        root / "corpus.jsonl",
        [{"_id": i, "title": t, "text": x} for i, (t, x) in DOCS.items()],
    )
    _jsonl(root / "queries.jsonl", [{"_id": q, "text": t} for q, (t, _) in QUERIES.items()])
    qrels = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, (_, d) in QUERIES.items()]
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    return root


@pytest.mark.model
def test_all_modes_score_report_and_second_run_reuses_the_cached_index(tmp_path, embedder):
    dataset = make_beir(tmp_path / "tiny")
    cache = tmp_path / "cache"
    report = run_retrieval(dataset, cache_dir=cache, embedder=embedder)

    assert [c.mode for c in report.configs] == list(DEFAULT_MODES)
    assert report.queries == 5 and report.dataset == "tiny"
    for config in report.configs:
        assert config.metrics["recall@100"] == 1.0  # 10 docs: every ranking holds them all
        assert 0.0 <= config.metrics["ndcg@10"] <= 1.0
        assert {"total"} <= config.latency_ms.keys()
    assert report.configs[0].metrics["mrr@10"] == 1.0  # the queries share words with their doc
    assert report.configs[1].docs_ranked == 10  # dense ranks every document
    assert report.configs[0].docs_ranked < 10  # BM25 only those sharing a word with the query
    assert "embed_query" in report.configs[1].latency_ms
    assert "embed_query" not in report.configs[0].latency_ms
    (build,) = report.indexes
    assert not build.reused and build.embedded_chunks == 10 and build.documents == 10
    assert build.bytes > 0 and build.build_seconds > 0

    files = write_report(report.to_dict(), tmp_path / "out")
    data = json.loads(files.json.read_text())
    assert data["dataset"] == "tiny" and data["queries"] == 5
    assert {"mode", "ndcg@10", "recall@100", "mrr@10", "latency_ms_p50"} <= data["configs"][
        0
    ].keys()
    markdown = files.markdown.read_text()
    assert "| `hybrid+rerank` |" in markdown and "nDCG@10" in markdown
    for chart in files.charts:
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {c.name for c in files.charts} == {"metrics.png", "latency.png"}

    again = run_retrieval(dataset, cache_dir=cache, embedder=embedder, modes=("bm25",))
    (build2,) = again.indexes
    assert build2.reused and build2.embedded_chunks == 0
    assert build2.path == build.path and build2.build_seconds == build.build_seconds
    assert again.configs[0].metrics == report.configs[0].metrics


@pytest.mark.model
def test_chunk_sizes_get_their_own_index_and_moved_dataset_still_hits_cache(tmp_path, embedder):
    dataset = make_beir(tmp_path / "tiny")
    cache = tmp_path / "cache"
    report = run_retrieval(
        dataset, modes=("bm25",), chunk_sizes=(None, 16), cache_dir=cache, embedder=embedder
    )
    assert [c.name for c in report.configs] == ["bm25", "bm25 @16tok"]
    assert report.indexes[0].path != report.indexes[1].path
    assert report.indexes[1].chunks > report.indexes[0].chunks  # smaller chunks, more of them

    moved = make_beir(tmp_path / "elsewhere")
    again = run_retrieval(moved, modes=("bm25",), cache_dir=cache, embedder=embedder)
    assert again.indexes[0].reused and again.indexes[0].path == report.indexes[0].path


@pytest.mark.model
def test_labelled_folder_ranks_files_and_skips_unanswerable_questions(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    for doc_id, (title, text) in list(DOCS.items())[:5]:
        (docs / f"{doc_id}.md").write_text(f"# {title}\n\n{text}\n")
    (docs / "sub").mkdir()
    (docs / "sub" / "d9.txt").write_text(DOCS["d9"][1])
    _jsonl(
        docs / "questions.jsonl",
        [
            {"question": "how do bees make honey", "file": "d1.md", "answer": "nectar"},
            {"question": "what makes iron rust", "file": "sub/d9.txt", "answer": None},
            {"question": "who won the 1998 world cup", "file": None},
        ],
    )
    report = run_retrieval(
        docs, modes=("bm25", "dense"), cache_dir=tmp_path / "c", embedder=embedder
    )
    assert report.kind == "labelled" and report.queries == 2 and report.skipped_queries == 1
    assert report.indexes[0].documents == 6  # questions.jsonl itself is not indexed
    assert not report.indexes[0].failed
    assert report.configs[0].metrics["mrr@10"] == 1.0


def test_labelled_gold_file_that_does_not_exist_names_the_line(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("alpha")
    (docs / "questions.jsonl").write_text(
        '{"question": "q1", "file": "a.md"}\n\n{"question": "q2", "file": "missing.md"}\n'
    )
    with pytest.raises(DatasetError) as info:
        load_dataset(docs)
    assert info.value.line == 3 and "missing.md" in str(info.value)


def test_malformed_queries_file_names_the_line(tmp_path):
    dataset = make_beir(tmp_path / "bad")
    with (dataset / "queries.jsonl").open("a") as handle:
        handle.write('{"_id": "q6", "text": \n')
    with pytest.raises(DatasetError) as info:
        run_retrieval(dataset, cache_dir=tmp_path / "c")
    assert info.value.line == 6 and "queries.jsonl" in str(info.value)


def test_folder_that_is_not_a_dataset_names_what_is_missing(tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n')
    with pytest.raises(DatasetError, match="no queries.jsonl"):
        load_dataset(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="not an evaluation dataset"):
        load_dataset(empty)


def test_qa_folder_without_qrels_uses_gold_documents(tmp_path):
    make_beir(tmp_path / "qa")
    root = tmp_path / "qa"
    (root / "queries.jsonl").unlink()
    (root / "qrels" / "test.tsv").unlink()
    (root / "qrels").rmdir()
    _jsonl(
        root / "questions.jsonl",
        [
            {"id": "a", "question": "bees?", "is_impossible": False, "answers": ["honey"],
             "gold_doc_id": "d1"},
            {"id": "b", "question": "moon?", "is_impossible": True, "answers": [],
             "gold_doc_id": "d6"},
        ],
    )  # fmt: skip
    dataset = load_dataset(root)
    assert dataset.kind == "qa" and dataset.qrels == {"a": {"d1": 1}} and dataset.skipped == 1


def test_limit_keeps_the_first_queries_and_bad_modes_are_refused(tmp_path):
    dataset = load_dataset(make_beir(tmp_path / "tiny"), limit=2)
    assert list(dataset.queries) == ["q1", "q2"] and list(dataset.qrels) == ["q1", "q2"]
    with pytest.raises(ConfigError, match="'sparse'"):
        run_retrieval(tmp_path / "tiny", modes=("sparse",))


def _fake_report(ndcg: float, recall: float, p50: float) -> dict:
    config = {"name": "hybrid", "mode": "hybrid", "chunk_tokens": None, "ndcg@10": ndcg,
              "recall@100": recall, "mrr@10": 0.5, "map": 0.5, "p@10": 0.1,
              "latency_ms_p50": p50, "latency_ms_p95": p50 * 2,
              "latency_ms": {"total": {"p50": p50, "p95": p50 * 2, "mean": p50}}}  # fmt: skip
    return {"dataset": "tiny", "dataset_path": "tiny", "kind": "beir", "queries": 5,
            "skipped_queries": 0, "ks": [10, 100], "configs": [config], "indexes": [],
            "reranker": None, "seconds": 1.0, "created": "2025-01-01T00:00:00+00:00",
            "machine": {"cpus": 2}, "command": "rag eval retrieval tiny", "notes": []}  # fmt: skip


def test_baseline_marks_regressions_and_improvements(tmp_path):
    old = _fake_report(ndcg=0.60, recall=0.90, p50=10.0)
    new = _fake_report(ndcg=0.62, recall=0.89, p50=12.0)
    new["configs"][0]["mrr@10"] = 0.503  # within the threshold: unchanged
    compared = compare(new, old)
    deltas = compared["configs"][0]["baseline"]
    assert deltas["ndcg@10"]["change"] == "better" and deltas["ndcg@10"]["delta"] == 0.02
    assert deltas["recall@100"]["change"] == "worse"
    assert deltas["mrr@10"]["change"] == "same"
    assert deltas["latency_ms_p50"] == {"old": 10.0, "delta": 2.0}
    assert compared["baseline"]["regressions"] == 1 and compared["baseline"]["improvements"] == 1
    markdown = render_markdown(compared)
    assert "0.6200 ▲ (+0.0200)" in markdown and "0.8900 ▼ (-0.0100)" in markdown

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "report.json").write_text(json.dumps(old))
    files = write_report(new, tmp_path / "new", baseline=load_report(tmp_path / "old/report.json"))
    written = json.loads(files.json.read_text())
    assert written["configs"][0]["baseline"]["ndcg@10"]["change"] == "better"


def test_baseline_that_is_not_a_report_is_refused(tmp_path):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(ConfigError, match="not a report.json"):
        load_report(tmp_path / "x.json")
    with pytest.raises(ConfigError, match="not found"):
        load_report(tmp_path / "nope.json")
