"""Request bodies, checked by pydantic: a wrong type or value is a 400 naming the field.

OpenAI's own fields are taken as its clients send them (extra ones are ignored); ours
(`k`, `strict`, `filters`, `include_sources`) are strict: "5" is not a number here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

Role = Literal["system", "developer", "user", "assistant", "tool"]


class FiltersBody(BaseModel):
    """Limit retrieval to documents whose path matches a glob and whose kind is listed."""

    model_config = ConfigDict(extra="forbid")

    path_glob: StrictStr | None = Field(None, description="shell glob on the path, e.g. *.pdf")
    kinds: list[StrictStr] = Field(default_factory=list, description="e.g. ['pdf', 'md']")


class ContentPart(BaseModel):
    """One part of a message's content; only text parts are read."""

    model_config = ConfigDict(extra="allow")

    type: StrictStr
    text: StrictStr | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: StrictStr | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """`POST /v1/chat/completions`: OpenAI's body plus our retrieval fields."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool = False
    max_tokens: StrictInt | None = Field(None, ge=1, le=32768)
    max_completion_tokens: StrictInt | None = Field(None, ge=1, le=32768)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    n: StrictInt = Field(1, ge=1, le=1, description="only one choice is made")
    k: StrictInt | None = Field(None, ge=1, le=100, description="passages to consider")
    strict: StrictBool | None = Field(None, description="drop sentences no source supports")
    filters: FiltersBody | None = None
    include_sources: StrictBool = True


class SearchRequest(BaseModel):
    """`POST /search`."""

    model_config = ConfigDict(extra="forbid")

    query: StrictStr = Field(min_length=1)
    k: StrictInt = Field(10, ge=1, le=100)
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    filters: FiltersBody | None = None
    rerank: StrictBool = True
    explain: StrictBool = False


class EmbeddingsRequest(BaseModel):
    """`POST /v1/embeddings`."""

    model_config = ConfigDict(extra="ignore")

    input: StrictStr | list[StrictStr] = Field(min_length=1)
    model: StrictStr | None = None
    encoding_format: Literal["float", "base64"] = "float"
