"""The native endpoints: search, ingest jobs, documents, status, health."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from fastapi import APIRouter, Request, UploadFile
from fastapi.responses import JSONResponse

from rag.locations import describe
from rag.serve.errors import RequestError, service_of
from rag.serve.schemas import SearchRequest
from rag.serve.uploads import UploadError, save_upload, upload_dir

router = APIRouter(tags=["rag"])


@router.get("/health")
def health() -> dict:
    """Liveness: 200 while the server runs (no key needed)."""
    return {"status": "ok"}


@router.get("/status")
def status(request: Request) -> dict:
    """The index (documents, chunks, generation), the models, the queue, the cache and the
    watched folders."""
    return service_of(request).status()


@router.post("/search")
def search(body: SearchRequest, request: Request) -> dict:
    """The `k` best passages for `query`, with scores (and each stage's when `explain`)."""
    filters = body.filters
    retrieval = service_of(request).retrieve(
        body.query, body.k, mode=body.mode, rerank=body.rerank,
        path_glob=filters.path_glob if filters else None,
        kinds=tuple(filters.kinds) if filters else (),
    )  # fmt: skip
    hits = []
    for hit in retrieval.hits:
        data = asdict(hit)
        data["location"] = describe(hit.kind, hit.page, hit.detail, hit.heading)
        stages = data.pop("stages")
        if body.explain:
            data["explain"] = stages
        hits.append(data)
    timings = {k: round(v, 4) for k, v in retrieval.timings.items()}
    return {"query": body.query, "hits": hits, "timings": timings}


@router.post("/ingest", status_code=202)
async def ingest(request: Request, files: list[UploadFile]) -> JSONResponse:
    """Upload files (multipart, field `files`) and index them in the background.

    Returns the job; follow it at GET /jobs/{id}. Questions keep being answered from the
    index as it was until the job is done. A name with a path in it is refused.
    """
    service = service_of(request)
    area = upload_dir(service.directory)
    paths = []
    for upload in files:
        try:
            paths.append(await asyncio.to_thread(save_upload, area, upload.filename, upload.file))
        except UploadError as exc:
            raise RequestError(str(exc), param="files") from None
    if not paths:
        raise RequestError("files: no file was uploaded", param="files")
    job = service.submit_ingest(paths)
    return JSONResponse(job.to_dict(), status_code=202,
                        headers={"Location": f"/jobs/{job.id}"})  # fmt: skip


@router.get("/jobs")
def jobs(request: Request) -> dict:
    """Every ingest job this server has run or queued (newest last), and the watched
    folders (`rag serve --watch`; null when none): their last batch and its job."""
    service = service_of(request)
    watched = service.watched.to_dict() if service.watched is not None else None
    return {"jobs": [job.to_dict() for job in service.jobs.all()], "watch": watched}


@router.get("/jobs/{job_id}")
def job(job_id: str, request: Request) -> dict:
    """One ingest job: state, files done of total, the current file, the report."""
    found = service_of(request).jobs.get(job_id)
    if found is None:
        raise RequestError(f"no job {job_id!r} (GET /jobs lists them)", param="job_id",
                           status=404, code="not_found")  # fmt: skip
    return found.to_dict()


@router.get("/documents")
def documents(request: Request) -> dict:
    """The indexed documents with their ids (for DELETE /documents/{id})."""
    return {"documents": [asdict(d) for d in service_of(request).documents()]}


@router.delete("/documents/{document_id}")
def delete_document(document_id: int, request: Request) -> dict:
    """Remove a document from the index (an uploaded one's file too)."""
    removed = service_of(request).delete_document(document_id)
    if removed is None:
        raise RequestError(f"no document with id {document_id} (GET /documents lists them)",
                           param="document_id", status=404, code="not_found")  # fmt: skip
    return {"deleted": removed.id, "path": removed.path}
