"""`rag serve`: the pipeline behind an HTTP API (OpenAI-compatible and native), a web page
and an MCP server. The pipeline is built once (`service.RagService`); `app.create_app`
puts the routes, limits and security around it.

>>> from rag.serve import RagService, create_app
>>> service = RagService("my-index", settings)  # doctest: +SKIP
>>> app = create_app(service)  # doctest: +SKIP
"""

from rag.serve.app import create_app
from rag.serve.service import RagService

__all__ = ["RagService", "create_app"]
