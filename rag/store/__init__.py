"""The index directory: SQLite, the source of truth (`db`), its writer lock (`lock`) and how
failed writes are told apart (`write_errors`). Vector and keyword indexes derived from it
live behind their ports (`rag.vectors`, `rag.keyword_index`)."""

from rag.store.db import (
    DB_NAME,
    FORMAT_VERSION,
    DocumentRecord,
    DocumentRow,
    Store,
    StoredChunk,
    StoreStats,
)
from rag.store.lock import write_lock
from rag.store.write_errors import check_room, disk_full_error, write_error

__all__ = [
    "DB_NAME",
    "FORMAT_VERSION",
    "DocumentRecord",
    "DocumentRow",
    "Store",
    "StoreStats",
    "StoredChunk",
    "check_room",
    "disk_full_error",
    "write_error",
    "write_lock",
]
