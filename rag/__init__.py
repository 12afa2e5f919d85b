"""rag: answer questions over your own documents, offline, with answers you can check.

>>> from rag import Index
>>> index = Index()                      # $RAG_HOME/index, else the platform's user data dir
>>> index.ingest(["docs/"])              # doctest: +SKIP
"""

from rag.errors import RagError
from rag.index import Index
from rag.ingest import FailedFile, IngestReport
from rag.retrieve import Hit

__all__ = ["FailedFile", "Hit", "Index", "IngestReport", "RagError"]
__version__ = "0.1.0"
