"""Structured answers: a pydantic model's JSON schema in, a validated instance (or None) out.

:func:`structured_chat` sends the schema (every free-text string capped with ``maxLength``,
because an uncapped string field once looped to the token limit; bounded integers spelled
out so that llama.cpp's grammar enforces them, see :func:`tighten_schema`), parses the
answer as JSON, validates it with pydantic and an optional extra validator, and on failure
asks again with the error appended as a user message (as instructor does). After
``max_retries`` re-asks it gives up and returns None, so the caller can fall back (e.g. to the
vanilla predictions) and count the failure. With a cache, an answer that failed is removed
from it again (only usable answers are kept), so a later run asks anew instead of replaying
the failure. Answers are only ever parsed as JSON; free text is never mapped to labels
by searching it for label names.

>>> from pydantic import BaseModel
>>> class Answer(BaseModel):
...     label: str
...     note: str = ""
>>> schema = capped_schema(Answer, max_length=40)
>>> schema["properties"]["note"]["maxLength"], schema["additionalProperties"]
(40, False)
>>> class Scripted(LLM):            # a stand-in model: first an invalid, then a valid answer
...     backend, answers = "scripted", ['{"label": ', '{"label": "joy"}']
...     model_id = "scripted"
...     def chat(self, request):
...         return ChatResponse(self.answers.pop(0), 10, 5, 0.1, "stop", "scripted")
>>> parsed, call = structured_chat(Scripted(), [{"role": "user", "content": "?"}], Answer)
>>> parsed.label, call.attempts, call.retries, call.parse_failures, call.failed
('joy', 2, 1, 1, False)
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence, TypeVar

from lantern.llm.base import ChatRequest, ChatResponse, LLM

T = TypeVar("T")

#: default cap for free-text strings in answer schemas (characters)
DEFAULT_MAX_LENGTH = 200
#: how much of a bad answer and of its error are quoted back to the model (tokens cost time)
_QUOTE_CHARS = 600


@dataclass
class CallStats:
    """What one :func:`structured_chat` call cost and how it went."""

    attempts: int = 0            # requests answered (including cache hits)
    retries: int = 0             # re-asks after a failure
    parse_failures: int = 0      # answers that were not JSON (or were cut off)
    validation_failures: int = 0  # JSON that failed the pydantic model or the validator
    failed: bool = False         # no valid answer after all retries (caller falls back)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0         # backend time; cache hits add the original call's time
    cache_hits: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class StructuredStats:
    """Totals over many :func:`structured_chat` calls (a headline cost figure of a run)."""

    calls: int = 0               # structured_chat calls
    requests: int = 0            # requests answered, retries included
    retries: int = 0
    parse_failures: int = 0
    validation_failures: int = 0
    final_failures: int = 0      # calls that returned None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cache_hits: int = 0

    def add(self, call: CallStats) -> None:
        self.calls += 1
        self.requests += call.attempts
        self.retries += call.retries
        self.parse_failures += call.parse_failures
        self.validation_failures += call.validation_failures
        self.final_failures += int(call.failed)
        self.prompt_tokens += call.prompt_tokens
        self.completion_tokens += call.completion_tokens
        self.seconds += call.seconds
        self.cache_hits += call.cache_hits

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out


#: integer ranges up to this many values are spelled out as an ``enum`` (see tighten_schema)
MAX_INT_ENUM = 256


def tighten_schema(schema: dict[str, Any], max_length: int = DEFAULT_MAX_LENGTH) -> dict[str, Any]:
    """A copy of ``schema`` that a grammar can enforce fully and that keeps answers short:

    * every free-text string gets a ``maxLength`` (strings already restricted by
      ``enum``/``const``/``pattern``/``format``/``maxLength`` are kept);
    * every object with ``properties`` forbids extra properties;
    * an integer bounded by ``minimum`` and ``maximum`` (at most :data:`MAX_INT_ENUM` values,
      e.g. a percent 0..100) also lists its values as an ``enum``: llama.cpp's schema-to-grammar
      converter ignores ``minimum``/``maximum`` (any 16-digit integer passes the grammar), but
      honours ``enum``. The meaning of the schema is unchanged.

    >>> tighten_schema({"type": "object", "properties": {"a": {"type": "string"},
    ...     "b": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    ...     "c": {"type": "string", "enum": ["x"]}}}, 9)["properties"]
    {'a': {'type': 'string', 'maxLength': 9}, 'b': {'anyOf': [{'type': 'string', 'maxLength': 9}, {'type': 'null'}]}, 'c': {'type': 'string', 'enum': ['x']}}
    >>> tighten_schema({"type": "integer", "minimum": 0, "maximum": 3})
    {'type': 'integer', 'minimum': 0, 'maximum': 3, 'enum': [0, 1, 2, 3]}
    """
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        types = node.get("type")
        is_string = types == "string" or (isinstance(types, list) and "string" in types)
        if is_string and not ({"enum", "const", "pattern", "format", "maxLength"} & node.keys()):
            node["maxLength"] = int(max_length)
        if types == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        if types == "integer" and "enum" not in node and "const" not in node:
            lo = node.get("minimum", node["exclusiveMinimum"] + 1 if "exclusiveMinimum" in node else None)
            hi = node.get("maximum", node["exclusiveMaximum"] - 1 if "exclusiveMaximum" in node else None)
            if isinstance(lo, int) and isinstance(hi, int) and 0 <= hi - lo < MAX_INT_ENUM:
                node["enum"] = list(range(lo, hi + 1))
        for key, value in list(node.items()):
            if key in ("enum", "const", "default", "examples"):
                continue  # values, not sub-schemas
            walk(value)

    walk(schema)
    return schema


def capped_schema(model_cls, max_length: int = DEFAULT_MAX_LENGTH) -> dict[str, Any]:
    """The pydantic model's JSON schema with :func:`tighten_schema` applied."""
    return tighten_schema(model_cls.model_json_schema(), max_length)


def _format_validation_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic.ValidationError: one compact line per problem
        try:
            parts = []
            for e in errors(include_url=False):
                loc = ".".join(str(x) for x in e.get("loc", ())) or "(root)"
                parts.append(f"{loc}: {e.get('msg')}")
            return "; ".join(parts)
        except TypeError:
            pass
    return str(exc) or type(exc).__name__


def _reask_message(error: str, truncated: bool) -> str:
    hint = ("Your answer was cut off at the token limit; answer more briefly. " if truncated else "")
    return (f"{hint}Your previous answer was invalid: {error[:_QUOTE_CHARS]}\n"
            "Reply again with only the corrected JSON object that follows the schema.")


def structured_chat(llm: LLM, messages: Sequence[dict[str, str]], model_cls: type[T],
                    validate: Callable[[T], T | None] | None = None, *, max_retries: int = 2,
                    cache=None, stats: StructuredStats | None = None, template_hash: str = "",
                    temperature: float = 0.0, max_tokens: int = 512, seed: int | None = 0,
                    max_length: int = DEFAULT_MAX_LENGTH, schema: dict | None = None,
                    schema_name: str | None = None) -> tuple[T | None, CallStats]:
    """Ask ``llm`` for an instance of the pydantic ``model_cls``; see the module docstring.

    ``validate(obj)`` checks what pydantic cannot (every utterance present, probabilities sum
    to 1, ...): it raises ``ValueError``/``AssertionError`` with a message the model will read,
    and may return a corrected object (e.g. renormalised) or None to keep ``obj``.
    ``cache`` (an :class:`~lantern.llm.cache.LLMCache`) wraps ``llm`` in a
    :class:`~lantern.llm.cache.CachedLLM` with ``template_hash``; the re-ask conversation is
    deterministic, so a resumed run replays the valid answers of retries from the cache, and
    asks again where an answer failed (failed answers are not kept). Backend errors
    (server down after all retries) propagate: they are not the model's fault and must not
    be silently turned into fallbacks. Returns ``(instance or None, CallStats)``; ``stats``,
    if given, accumulates the call.
    """
    from pydantic import ValidationError

    if cache is not None:
        from lantern.llm.cache import CachedLLM

        llm = CachedLLM(llm, cache, template_hash=template_hash)
    if schema is None:
        schema = capped_schema(model_cls, max_length)
    conversation = [dict(m) for m in messages]
    call = CallStats()
    result = None
    for attempt in range(max_retries + 1):
        if attempt:
            call.retries += 1
        request = ChatRequest(conversation, temperature=temperature, max_tokens=max_tokens,
                              seed=seed, json_schema=schema,
                              schema_name=schema_name or model_cls.__name__)
        response: ChatResponse = llm.chat(request)
        call.attempts += 1
        call.prompt_tokens += response.prompt_tokens
        call.completion_tokens += response.completion_tokens
        call.seconds += response.seconds
        call.cache_hits += int(response.cached)
        truncated = response.finish_reason == "length"
        try:
            # strict=False: llama-cpp-python's JSON grammar lets raw control characters (a
            # newline) into strings, which strict JSON forbids; the structure is still JSON.
            data = json.loads(response.text, strict=False)
        except ValueError as exc:
            call.parse_failures += 1
            error = f"not valid JSON ({exc})"
        else:
            try:
                obj = model_cls.model_validate(data)
                if validate is not None:
                    checked = validate(obj)
                    obj = obj if checked is None else checked
            except (ValidationError, ValueError, AssertionError, TypeError) as exc:
                call.validation_failures += 1
                error = _format_validation_error(exc)
            else:
                result = obj
                break
        forget = getattr(llm, "forget", None)   # a CachedLLM: keep no failure as an answer
        if forget is not None:
            forget(request)
        call.errors.append(error[:_QUOTE_CHARS])
        conversation = conversation + [
            {"role": "assistant", "content": response.text[:_QUOTE_CHARS]},
            {"role": "user", "content": _reask_message(error, truncated)},
        ]
    call.failed = result is None
    if stats is not None:
        stats.add(call)
    return result, call
