"""Label distributions read from next-token log-probabilities at answer slots.

A *slot request* is a chat prompt whose answer is one line per utterance, ``N: <label word>``.
Instead of letting the model write numbers, the class distribution of utterance N is read
from the next-token distribution right after ``N:`` (the *slot*): the probabilities of the
first tokens of each label word's surface forms (`` happy``, `` Happy``, ``happy``, ...) are
summed per class and normalised. Then the slot is filled with the model's own top label
(what greedy decoding would write; the same choice a server makes at temperature 0) and the
next slot is read. No numbers are generated, so there is nothing to validate or renormalise
and no bias towards the first key of a JSON object; the probability mass that fell on label
tokens is recorded per slot, and a slot below ``min_mass`` is counted.

Backends:

- embedded llama.cpp (:meth:`lantern.llm.embedded.EmbeddedLLM.read_slots`): one forward pass
  per request over the tokens not already in the KV cache (the shared instruction prefix is
  evaluated once per process), plus one short decode per filled slot;
- any OpenAI-compatible server (:func:`read_slots_via_chat`): a greedy chat completion with
  ``logprobs``/``top_logprobs``; the slots are located in the returned token stream. A
  server that returns no log-probabilities raises :class:`NoLogprobs` (the caller then uses
  written percents).

>>> v = Verbaliser(("happy", "sad"))
>>> v.label_of_token(" Happy"), v.label_of_token("sa"), v.label_of_token(" s"), v.label_of_token("x")
(0, 1, 1, None)
>>> resp = SlotResponse(probs=[[0.8, 0.2]], mass=[0.9], filled=[0], prompt_tokens=10,
...                     reused_tokens=5, decode_steps=1, fill_tokens=0, seconds=0.1, model_id="m")
>>> SlotResponse.from_dict(resp.to_dict()).probs
[[0.8, 0.2]]
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from lantern.llm.base import ChatRequest, LLMError

#: slots whose label mass is below this are counted as low-mass (the model wanted to say
#: something else there); their distribution is still the normalised label part
DEFAULT_MIN_MASS = 0.5


class NoLogprobs(LLMError):
    """The backend returned no log-probabilities (the caller falls back to written percents)."""


def slot_prefix(index: int) -> str:
    """What precedes slot ``index`` (0-based) in the answer: ``"1:"``, then ``"\\n2:"``, ..."""
    return f"{index + 1}:" if index == 0 else f"\n{index + 1}:"


def surface_forms(word: str) -> tuple[str, ...]:
    """The spellings of a label word that may follow ``N:``: with or without the space,
    lower case or capitalised (deduplicated, in a fixed order)."""
    forms = []
    for w in (word.lower(), word.capitalize()):
        for f in (" " + w, w):
            if f not in forms:
                forms.append(f)
    return tuple(forms)


@dataclass(frozen=True)
class Verbaliser:
    """Label words, one per class in class order (``happy`` for ``hap``)."""

    words: tuple[str, ...]

    def __post_init__(self) -> None:
        lowered = [w.lower() for w in self.words]
        if len(set(lowered)) != len(lowered) or not all(re.fullmatch(r"[a-z]+", w) for w in lowered):
            raise ValueError(f"label words must be distinct single words of letters; got {self.words}")

    @classmethod
    def for_label_set(cls, classes: Sequence[str], descriptions: Sequence[str] = ()) -> "Verbaliser":
        """Words from the label set's definitions (``"happy: pleased, ..."`` -> ``happy``)."""
        if descriptions:
            return cls(tuple(d.split(":")[0].strip().lower() for d in descriptions))
        return cls(tuple(c.lower() for c in classes))

    def label_of_token(self, token: str) -> int | None:
        """The class a generated token starts, or None: the token (without leading space,
        any case) must be a non-empty prefix of exactly one label word. Used where only token
        strings are known (servers); the embedded path uses token ids."""
        t = token.lstrip(" ").lower()
        if not t:
            return None
        hits = [k for k, w in enumerate(self.words) if w.lower().startswith(t)]
        return hits[0] if len(hits) == 1 else None

    def first_token_ids(self, tokenize) -> list[set[int]]:
        """Per class, the ids of the first token of each surface form (``tokenize(str) ->
        list[int]``). A first token that two classes share (``s`` for ``sadness`` and
        ``surprise`` written without a space) cannot be attributed and is left out of both;
        a class left with no token raises ValueError (choose other words)."""
        sets: list[set[int]] = []
        for word in self.words:
            ids = set()
            for form in surface_forms(word):
                toks = tokenize(form)
                if toks:
                    ids.add(toks[0])
            sets.append(ids)
        shared = {i for k, a in enumerate(sets) for b in sets[k + 1:] for i in a & b}
        sets = [ids - shared for ids in sets]
        for word, ids in zip(self.words, sets):
            if not ids:
                raise ValueError(f"every spelling of the label word {word!r} starts with a token "
                                 f"another label word starts with; choose other words")
        return sets


@dataclass(frozen=True)
class SlotRequest:
    """Chat messages (system + user) whose answer is ``n_slots`` lines ``N: <label word>``."""

    messages: Sequence[dict[str, str]]
    words: tuple[str, ...]
    n_slots: int
    #: alternatives per position asked of a server (OpenAI allows up to 20)
    top_logprobs: int = 20

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", [dict(m) for m in self.messages])
        object.__setattr__(self, "words", tuple(self.words))
        if self.n_slots < 1:
            raise ValueError(f"a slot request needs at least one slot; got {self.n_slots}")
        Verbaliser(self.words)   # validates the words

    @property
    def verbaliser(self) -> Verbaliser:
        return Verbaliser(self.words)

    def grammar(self) -> str:
        """GBNF for the answer (``1: word`` lines, nothing else), for servers that take one;
        the log-probabilities they return are the model's own, before the grammar.

        >>> print(SlotRequest([{"role": "user", "content": "x"}], ("happy", "sad"), 2).grammar())
        root ::= "1: " label "\\n2: " label
        label ::= "happy" | "sad"
        """
        lines = " ".join((f'"{i + 1}: "' if i == 0 else f'"\\n{i + 1}: "') + " label"
                         for i in range(self.n_slots))
        labels = " | ".join(f'"{w}"' for w in self.words)
        return f"root ::= {lines}\nlabel ::= {labels}"

    def key_material(self) -> dict[str, Any]:
        """Everything that shapes the answer (part of the cache key)."""
        return {"mode": "slots-v1", "messages": self.messages, "words": list(self.words),
                "n_slots": self.n_slots, "top_logprobs": self.top_logprobs}


@dataclass
class SlotResponse:
    """Per slot: the class distribution over the label words (rows sum to 1), the mass the
    label tokens held before normalising, and the class written into the slot. Costs:
    tokens evaluated for this request (``prompt_tokens``; ``reused_tokens`` came from the
    KV cache), ``decode_steps`` (forward calls after the prompt's) and the tokens they fed
    (``fill_tokens``). ``unread`` counts slots a server's answer did not contain (their row
    is uniform and must not be used as an answer)."""

    probs: list[list[float]]
    mass: list[float]
    filled: list[int]
    prompt_tokens: int
    reused_tokens: int
    decode_steps: int
    fill_tokens: int
    seconds: float
    model_id: str
    cached: bool = False
    unread: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SlotResponse":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def label_distribution(logprob_of, id_sets: Sequence[set[int]]) -> tuple[list[float], float]:
    """(normalised class distribution, label mass) from a token -> log-probability lookup."""
    per_class = [sum(math.exp(logprob_of(i)) for i in ids) for ids in id_sets]
    mass = sum(per_class)
    if mass <= 0 or not math.isfinite(mass):
        k = len(id_sets)
        return [1.0 / k] * k, 0.0
    return [p / mass for p in per_class], float(mass)


# ------------------------------------------------------------------------ servers

_SLOT_END = re.compile(r"(?:^|\n)[ \t]*(\d+)[ \t]*:[ \t]*$")


def read_slots_via_chat(llm, request: SlotRequest) -> SlotResponse:
    """Slots read from a greedy chat completion with top log-probabilities (any backend
    whose ``chat`` returns ``top_logprobs``, e.g. an OpenAI-compatible server).

    The answer's tokens are walked in order; the first non-blank token after a line's
    ``N:`` is slot N's: its top alternatives are mapped to classes by
    :meth:`Verbaliser.label_of_token` and summed. Alternatives outside the server's top-k
    count as zero, so the mass is a lower bound. Slots missing from the answer are listed
    in ``unread``.
    """
    verbaliser = request.verbaliser
    k = len(request.words)
    chat_request = ChatRequest(request.messages, temperature=0.0, seed=0,
                               max_tokens=8 * request.n_slots + 8, logprobs=True,
                               top_logprobs=request.top_logprobs, grammar=request.grammar())
    t0 = time.perf_counter()
    response = llm.chat(chat_request)
    seconds = time.perf_counter() - t0 if not response.cached else response.seconds
    tokens = response.top_logprobs
    if not tokens:
        raise NoLogprobs(f"{getattr(llm, 'model_id', llm)} returned no log-probabilities "
                         f"(the server or model does not support logprobs/top_logprobs)")
    probs: list[list[float] | None] = [None] * request.n_slots
    mass = [0.0] * request.n_slots
    filled = [-1] * request.n_slots
    text = ""
    waiting: int | None = None      # slot whose first non-blank token comes next
    for tok in tokens:
        piece = tok.get("token") or ""
        if waiting is not None and piece.strip():
            if probs[waiting] is None:
                per_class = [0.0] * k
                for alt, lp in (tok.get("top") or {}).items():
                    c = verbaliser.label_of_token(alt)
                    if c is not None:
                        per_class[c] += math.exp(lp)
                total = sum(per_class)
                if total > 0:
                    probs[waiting] = [p / total for p in per_class]
                    mass[waiting] = total
                    filled[waiting] = max(range(k), key=per_class.__getitem__)
            waiting = None
        text += piece
        m = _SLOT_END.search(text)
        if m is not None:
            n = int(m.group(1)) - 1
            waiting = n if 0 <= n < request.n_slots else None
    unread = [i for i, p in enumerate(probs) if p is None]
    rows = [p if p is not None else [1.0 / k] * k for p in probs]
    return SlotResponse(probs=rows, mass=mass, filled=filled,
                        prompt_tokens=int(response.prompt_tokens), reused_tokens=0,
                        decode_steps=int(response.completion_tokens), fill_tokens=0,
                        seconds=float(seconds), model_id=response.model_id,
                        cached=response.cached, unread=unread)


__all__ = ["DEFAULT_MIN_MASS", "NoLogprobs", "SlotRequest", "SlotResponse", "Verbaliser",
           "label_distribution", "read_slots_via_chat", "slot_prefix", "surface_forms"]
