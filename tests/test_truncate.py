"""A GGUF model cut after n blocks (lantern.llm.truncate) gives layer n's final-normed states,
checked on the real SmolLM2 against transformers' own hidden states of the whole model."""

from __future__ import annotations

import os

import numpy as np
import pytest

from lantern.data.dialogues import Dialogue, Utterance
from lantern.errors import ConfigError
from lantern.features import attach_features, get_extractor
from lantern.llm.truncate import block_count, truncated_model

TURNS = [("A", "I got the job!"), ("B", "That's wonderful, I'm so happy for you."),
         ("A", "But I have to move to another city.")]


def test_cut_model_keeps_the_first_blocks_and_is_reused(smol_path):
    total = block_count(smol_path)
    assert total == 30
    assert truncated_model(smol_path, total) == smol_path          # nothing to cut
    for bad in (0, total + 1):
        with pytest.raises(ConfigError, match="between 1 and 30"):
            truncated_model(smol_path, bad)
    cut = truncated_model(smol_path, 15)
    assert cut.name == "smollm2-135m-l15.gguf" and block_count(cut) == 15
    assert cut.stat().st_size < smol_path.stat().st_size
    stamp = cut.stat().st_mtime_ns
    assert truncated_model(smol_path, 15) == cut and cut.stat().st_mtime_ns == stamp  # not rewritten
    other = smol_path.with_name("other.gguf")      # a source replaced in place is cut again
    other.symlink_to(smol_path)
    first = truncated_model(other, 10)
    touched = first.stat().st_mtime_ns
    os.utime(smol_path, ns=(touched + 10**9, smol_path.stat().st_mtime_ns + 10**9))
    assert truncated_model(other, 10).stat().st_mtime_ns != touched
    with pytest.raises(ConfigError, match="positive"):
        get_extractor("text:qwen-dialogue", layers=0)


def test_cut_model_states_are_the_middle_layer_of_the_whole_model(smol_path, tmp_path):
    """text:qwen-dialogue with layers=15 equals transformers' layer-15 states (after the
    model's final norm) mean-pooled over each turn; its cache key differs from the whole
    model's, and the whole model's key is what it was before ``layers`` existed."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    prefix = "A talk.\n"
    d = Dialogue("d", [Utterance(f"u{i}", s, t) for i, (s, t) in enumerate(TURNS)])
    options = {"model": str(smol_path), "prefix": prefix, "n_ctx": 512, "max_line_tokens": 64}
    vectors = {}
    for layers in (None, 15):
        opts = dict(options, **({"layers": layers} if layers else {}))
        attach_features([d], ["text:qwen-dialogue"], options={"text:qwen-dialogue": opts},
                        progress=False, cache_path=tmp_path / "f.sqlite")
        vectors[layers] = np.stack([u.features["text:qwen-dialogue"] for u in d.utterances])
    whole, cut = (get_extractor("text:qwen-dialogue", **options),
                  get_extractor("text:qwen-dialogue", layers=15, **options))
    assert "layers" not in whole.options() and cut.options()["layers"] == 15
    assert whole.cache_key(d.utterances[0]) != cut.cache_key(d.utterances[0])

    torch.set_num_threads(2)
    folder, name = str(smol_path.parent), smol_path.name
    tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name).eval()
    ids, spans = tok(prefix).input_ids, []
    for speaker, text in TURNS:
        line = tok(f"{speaker}: {text}\n", add_special_tokens=False).input_ids
        spans.append((len(ids), len(ids) + len(line)))
        ids += line
    with torch.inference_mode():
        hidden = model.model(torch.tensor([ids]), output_hidden_states=True).hidden_states
        reference = {None: hidden[-1][0], 15: model.model.norm(hidden[15])[0],
                     20: model.model.norm(hidden[20])[0]}
    pooled = {k: np.stack([h[a:b].mean(0).numpy() for a, b in spans]) for k, h in reference.items()}

    def cosine(a, b):
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    # Q8 weights in llama.cpp, dequantised float32 in torch: equal up to rounding.
    assert cosine(vectors[None], pooled[None]).min() > 0.999
    assert cosine(vectors[15], pooled[15]).min() > 0.999
    assert cosine(vectors[15], pooled[20]).max() < 0.98          # and not another layer's
