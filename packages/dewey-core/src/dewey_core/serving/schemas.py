"""Request bodies of the HTTP API (pydantic, as FastAPI uses).

``/v1/embeddings`` follows OpenAI's embeddings request, plus the fields ``input_type``
(``"query"`` or ``"document"``, the default), ``prompt``, ``truncate`` and ``normalize``.
Unknown fields are refused with a message naming them, so a misspelt option never passes
silently.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

EncodingFormat = Literal["float", "base64"]
PositiveInt = Annotated[StrictInt, Field(ge=1)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr
    """The served model's id (see ``GET /v1/models``)."""
    dimensions: PositiveInt | None = None
    """Output size: a head of that size, or the default vector truncated (Matryoshka)."""
    encoding_format: EncodingFormat = "float"


class EmbeddingRequest(_Request):
    """OpenAI's ``POST /v1/embeddings`` body."""

    input: StrictStr | list[StrictStr]
    input_type: Literal["query", "document"] = "document"
    """Which of the model's prompts to prepend."""
    prompt: StrictStr | None = None
    """A prompt to prepend instead of the model's query or document prompt."""
    truncate: StrictBool = False
    """Keep the first tokens of an input longer than the model's window instead of refusing it."""
    normalize: StrictBool = True
    user: StrictStr | None = None
    """Accepted for OpenAI compatibility; unused."""

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value):
        if isinstance(value, list):
            if not value:
                raise ValueError("input is an empty list; send at least one text")
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    kind = "a token array" if isinstance(item, (int, list)) else type(item).__name__
                    raise ValueError(f"input[{i}] must be a string, got {kind} (token arrays are "
                                     "not accepted: send text)")
        elif not isinstance(value, str):
            raise ValueError(f"input must be a string or a list of strings, got {type(value).__name__}")
        return value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class LateChunkRequest(_Request):
    """``POST /v1/late_chunk``: the arguments of :meth:`DeweyEncoder.late_chunk`."""

    documents: list[StrictStr] = Field(min_length=1)
    spans: list[list[tuple[StrictInt, StrictInt]]] | None = None
    """One list of ``[start, end]`` character spans per document; without it the server's
    chunker splits (``chunk_size``, ``chunk_overlap``, ``chunking``)."""
    chunk_size: StrictInt = 256
    chunk_overlap: StrictInt = 0
    chunking: Literal["boundaries", "fixed"] = "boundaries"
    allow_overlap: StrictBool = False
    context_tokens: StrictInt | None = None
    window_overlap: StrictInt | None = None


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: StrictStr
    """A ``data:image/...;base64,...`` URL or bare base64."""
    detail: Literal["auto", "low", "high"] | None = None
    """Accepted as OpenAI's chat parts carry it; the image is always embedded whole."""


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: StrictStr


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["image_url"]
    image_url: ImageURL


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ImageEmbeddingRequest(_Request):
    """``POST /v1/images/embeddings``: each input is an image (base64 or a data URL) or a list
    of OpenAI-style content parts (``text`` and ``image_url``) embedded together."""

    input: list[StrictStr | list[Part]] = Field(min_length=1)
    prompt: StrictStr | None = None


class TokenCountRequest(BaseModel):
    """``POST /v1/count_tokens``: content tokens per text (no special or prompt tokens)."""

    model_config = ConfigDict(extra="forbid")
    model: StrictStr
    input: list[StrictStr] = Field(min_length=1)
