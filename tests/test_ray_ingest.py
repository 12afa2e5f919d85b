"""`rag ingest --ray`: a real two-node Ray cluster on this machine against the local ingest.

The nodes take Ray's own choice of this machine's address: pinned to 127.0.0.1, a driver's
`ray.init(address=...)` could not reach them (Ray rewrites a loopback address to the node's).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rag import Index
from rag.errors import ConfigError
from rag.settings import Settings
from rag.store import Store
from rag_cli.main import app, ray_argv
from tests.conftest import DEMO

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(
    not HAS_RAY, reason="ray is not installed: .venv/bin/pip install -e '.[ray]'"
)
DEMO_FILES = ("warranty.txt", "faq.md", "known-issues.html", "kestrel-k2-service-manual.pdf",
              "specifications.md", "troubleshooting.md")  # fmt: skip


@pytest.fixture(scope="module")
def cluster():
    """A head node and a second node, one CPU each, as two sets of processes here."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})  # fmt: skip
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def ray_options(cluster, **options):
    from rag.distributed import RayOptions

    return RayOptions(address=cluster.address, **options)


def make_index(path: Path, embedder, **ingest) -> Index:
    settings = Settings().replace(**{f"ingest.{k}": v for k, v in ingest.items()})
    return Index(path, embedder=embedder, settings=settings)


def rows(path: Path) -> list[tuple]:
    """Every chunk as (id, document key, sha256, ord, text, page, heading), in id order."""
    store = Store(path)
    try:
        return store.db.execute(
            "SELECT c.id, d.key, d.sha256, c.ord, c.text, c.page, c.heading FROM chunks c "
            "JOIN documents d ON d.id = c.doc_id ORDER BY c.id"
        ).fetchall()
    finally:
        store.close()


def vectors(path: Path) -> dict[tuple[str, int], np.ndarray]:
    store = Store(path)
    try:
        found = store.db.execute(
            "SELECT d.key, c.ord, c.vector FROM chunks c JOIN documents d ON d.id = c.doc_id"
        ).fetchall()
    finally:
        store.close()
    return {(key, ord_): np.frombuffer(blob, dtype=np.float32) for key, ord_, blob in found}


@pytest.fixture(scope="module")
def built(tmp_path_factory, embedder, cluster):
    """A corpus (six demo files of four kinds, and beside them a three-record .jsonl
    collection) ingested locally into local/ and with Ray into ray/."""
    work = tmp_path_factory.mktemp("ray-ingest")
    corpus = work / "corpus"
    corpus.mkdir()
    for name in DEMO_FILES:
        shutil.copy(DEMO / name, corpus / name)
    records = [{"_id": f"r{i}", "title": f"Record {i}", "text": f"Record {i} says codeword{i}x."}
               for i in range(3)]  # fmt: skip
    (work / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    paths = [corpus, work / "records.jsonl"]  # a .jsonl is indexed only when named
    local = make_index(work / "local", embedder)
    on_ray = make_index(work / "ray", embedder)
    reports = local.ingest(paths), on_ray.ingest(paths, ray=ray_options(cluster, batch=2))
    return work, paths, local, on_ray, reports


@needs_ray
def test_ray_ingest_gives_the_local_index(built, cluster):
    work, paths, local, on_ray, (local_report, report) = built
    assert report.ok, (report.failed, report.error)
    assert (report.added, report.chunks) == (local_report.added, local_report.chunks)
    assert report.added == 9
    assert rows(work / "ray") == rows(work / "local")  # same ids, texts, hashes
    mine, theirs = vectors(work / "ray"), vectors(work / "local")
    assert mine.keys() == theirs.keys()
    assert min(float(mine[k] @ theirs[k]) for k in mine) >= 0.999
    for query in ("error code E07", "how long is the warranty", "codeword1x"):
        got = [(h.path, h.text) for h in on_ray.search(query, k=3, rerank=False)]
        assert got == [(h.path, h.text) for h in local.search(query, k=3, rerank=False)]
    assert Store(work / "ray").consistency_problems() == []
    assert on_ray.ingest(paths, ray=ray_options(cluster)).unchanged == 9  # Ray is not started


@needs_ray
def test_second_ray_ingest_updates_and_prunes(built, cluster):
    work, paths, *_ = built  # changes the corpus: the last test to use `built`
    corpus = paths[0]
    (corpus / "warranty.txt").write_text("The warranty now lasts 77 months.\n")
    (corpus / "faq.md").unlink()
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    result = CliRunner().invoke(app, ["ingest", *map(str, paths), "--index", str(work / "ray"),
                                      "--ray", cluster.address, "--json"])  # fmt: skip
    assert result.exit_code == 1, result.output  # broken.pdf failed, the rest is indexed
    report = json.loads(result.stdout)
    assert (report["added"], report["updated"], report["unchanged"], report["removed"]) == (
        0, 1, 7, 1)  # fmt: skip
    assert [Path(f["path"]).name for f in report["failed"]] == ["broken.pdf"]
    found = rows(work / "ray")
    assert [row[4] for row in found if row[1].endswith("warranty.txt")] == [
        "The warranty now lasts 77 months."]  # fmt: skip
    assert str(corpus / "faq.md") not in {row[1] for row in found}
    assert Store(work / "ray").consistency_problems() == []


@needs_ray
def test_a_node_removed_mid_ingest_loses_and_duplicates_nothing(tmp_path, embedder, cluster):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        (folder / f"doc{i:02d}.txt").write_text(
            " ".join(f"Document {i} states fact {j} about topic {i * j % 11}." for j in range(8))
        )
    second = next(node for node in cluster.list_all_nodes() if node is not cluster.head_node)
    removed = threading.Event()
    remover = threading.Thread(target=cluster.remove_node, args=(second,))

    class RemoveNodeAfterFirstWrite:
        def start(self, total_files: int) -> None:
            pass

        def file_done(self, path: str) -> None:
            pass

        def chunks_embedded(self, count: int) -> None:
            if not removed.is_set():  # the first batch is written: 19 are still to come
                removed.set()
                remover.start()

    index = make_index(tmp_path / "idx", embedder, flush_chunks=2)
    try:
        report = index.ingest([folder], progress=RemoveNodeAfterFirstWrite(),
                              ray=ray_options(cluster, actors=2, batch=2))  # fmt: skip
    finally:
        if removed.is_set():
            remover.join()
            cluster.add_node(num_cpus=1)  # for any test after this
    assert removed.is_set()
    assert report.ok, (report.failed, report.error)
    assert report.added == 40
    found = rows(tmp_path / "idx")
    assert len({row[1] for row in found}) == 40
    assert len(found) == len({(row[1], row[3]) for row in found}) == report.chunks == 40
    assert all(row[4] == Path(row[1]).read_text() for row in found)  # one chunk each
    assert [row[1] for row in found] == sorted(row[1] for row in found)  # in the driver's order
    assert Store(tmp_path / "idx").consistency_problems() == []


def test_missing_ray_says_how_to_install_it(tmp_path, docs_folder, monkeypatch):
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    from rag.distributed import RayOptions

    with pytest.raises(ConfigError, match=r"pip install 'rag\[ray\]'"):
        Index(tmp_path / "idx").ingest([docs_folder], ray=RayOptions())
    result = CliRunner().invoke(app, ["ingest", str(docs_folder), "--index",
                                      str(tmp_path / "idx"), "--ray", "auto"])  # fmt: skip
    assert result.exit_code == 2
    assert "pip install 'rag[ray]'" in result.output and ".[ray]" in result.output
    assert not (tmp_path / "idx" / "index.sqlite").exists()


@pytest.fixture
def docs_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Alpha.")
    return folder


def test_a_bare_ray_flag_means_auto():
    assert ray_argv(["ingest", "docs", "--ray"]) == ["ingest", "docs", "--ray", "auto"]
    assert ray_argv(["ingest", "--ray", "docs"]) == ["ingest", "--ray", "auto", "docs"]
    assert ray_argv(["ingest", "--ray", "--json"]) == ["ingest", "--ray", "auto", "--json"]
    assert ray_argv(["ingest", "d", "--ray", "10.0.0.5:6379"]) == ["ingest", "d", "--ray",
                                                                   "10.0.0.5:6379"]  # fmt: skip
    assert ray_argv(["ingest", "d", "--ray", "ray://head:10001"])[-1] == "ray://head:10001"
    assert ray_argv(["ingest", "d", "--ray", "auto"]) == ["ingest", "d", "--ray", "auto"]
    assert ray_argv(["ingest", "--", "--ray"]) == ["ingest", "--", "--ray"]


def test_ray_options_are_checked(tmp_path, docs_folder):
    from rag.distributed import RayOptions

    with pytest.raises(ConfigError, match="--ray-actors 0"):
        RayOptions(actors=0)
    result = CliRunner().invoke(app, ["ingest", str(docs_folder), "--index",
                                      str(tmp_path / "idx"), "--ray-actors", "2"])  # fmt: skip
    assert result.exit_code == 2 and "go with --ray" in result.output


def test_a_worker_with_another_model_is_refused(embedder):
    import dataclasses

    from rag.distributed import EmbedderRecipe, _user_error
    from rag.errors import IndexFormatError

    recipe = dataclasses.replace(EmbedderRecipe.of(embedder), fingerprint="0000")
    with pytest.raises(IndexFormatError, match="not the index's .*fingerprint 0000") as caught:
        recipe.build()
    # an actor's constructor error reaches the driver only as its traceback's text
    wrapped = RuntimeError(f"The actor died ...\nTraceback ...\nrag.errors.IndexFormatError: "
                           f"{caught.value}\n")  # fmt: skip
    assert str(_user_error(wrapped)) == str(caught.value)
    assert _user_error(RuntimeError("node 10.0.0.2 died")) is None
