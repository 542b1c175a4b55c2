"""RAVDESS speech: the speaker-independent loader, Whisper encoder features, per-speaker
normalisation and the utterance-level baselines of issue #12."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from conftest import require_data
from lantern.data.ravdess import load_ravdess, parse_name
from lantern.errors import ConfigError, DataError

RAVDESS = "RAVDESS_speech_16k"


def _fixture(tmp_path, names):
    """A RAVDESS-shaped folder of 1 s 16 kHz WAV clips (a quiet tone)."""
    root = tmp_path / RAVDESS
    for name in names:
        actor = name.split("-")[-1]
        folder = root / f"Actor_{actor}"
        folder.mkdir(parents=True, exist_ok=True)
        _write_wav(folder / f"{name}.wav", 1.0)
    return tmp_path


def _write_wav(path, seconds, amplitude=0.1):
    t = np.arange(int(16000 * seconds)) / 16000
    samples = (amplitude * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(samples.tobytes())
    return path


@pytest.mark.data
def test_real_ravdess_splits_are_speaker_independent(data_root):
    require_data(RAVDESS)
    ds = load_ravdess(data_root)
    sizes = {s: len(ds.utterances(s)) for s in ("train", "valid", "test")}
    assert sizes == {"train": 720, "valid": 120, "test": 120}
    speakers = {s: {u.speaker for u in ds.utterances(s)} for s in sizes}
    assert speakers["test"] == {"actor15", "actor16"} and speakers["valid"] == {"actor13", "actor14"}
    assert not speakers["train"] & (speakers["valid"] | speakers["test"])
    assert ds.label_counts("test") == {"neutral": 8, **{c: 16 for c in ds.label_set.classes[1:]}}
    u = ds.utterances("test")[0]
    assert u.media["audio"].endswith(".flac") and u.text in ("Kids are talking by the door.",
                                                            "Dogs are sitting by the door.")


def test_bad_names_and_overlapping_actors_are_errors(tmp_path):
    root = _fixture(tmp_path, ["03-01-01-01-01-01-01", "03-01-05-02-02-01-02"])
    ds = load_ravdess(root, actors={"train": [1], "test": [2]})
    assert [u.label for u in ds.utterances("test")] == [ds.label_set.index("angry")]
    assert ds.utterances("train")[0].meta["gender"] == "male"
    with pytest.raises(ConfigError, match="actor 1 is in both"):
        load_ravdess(root, actors={"train": [1], "test": [1, 2]})
    with pytest.raises(DataError, match="no clips for split"):
        load_ravdess(root, actors={"train": [1], "test": [9]})
    _write_wav(root / RAVDESS / "Actor_01" / "03-01-09-01-01-01-01.wav", 0.5)
    with pytest.raises(DataError, match="field 'emotion'") as err:
        load_ravdess(root, actors={"train": [1], "test": [2]})
    assert "03-01-09-01-01-01-01.wav" in str(err.value)
    with pytest.raises(DataError, match="MM-VV-EE"):
        parse_name("Actor_01/angry.wav")


@pytest.mark.data
def test_whisper_encoder_features_of_real_clips(whisper):
    from lantern.data.dialogues import Utterance
    from lantern.features import get_extractor

    folder = require_data(f"{RAVDESS}/Actor_15")
    clips = sorted(folder.glob("*.flac"))[:2]
    us = [Utterance(c.stem, "actor15", "", media={"audio": str(c)}) for c in clips]
    ex = get_extractor("audio:whisper")
    v = ex.extract_batch(us)
    assert v.shape == (2, 1024) and np.isfinite(v).all()
    assert (v[:, 512:] > 0).all()                    # the std half of the pooling
    assert np.allclose(ex.extract_batch(us[:1]), v[:1], atol=1e-5)   # deterministic
    mean_only = get_extractor("audio:whisper", pooling="mean").extract_batch(us[:1])
    assert np.allclose(mean_only, v[:1, :512], atol=1e-5)
    states = ex.encode(np.zeros(16000, np.float32))  # 1 s: 100 mel frames -> 50 states
    assert states.shape == (50, 512)


def test_too_short_or_unreadable_audio_is_a_clear_error(tmp_path, whisper):
    from lantern.data.dialogues import Utterance
    from lantern.features import get_extractor

    ex = get_extractor("audio:whisper")
    short = _write_wav(tmp_path / "short.wav", 0.1)
    with pytest.raises(DataError, match="0.100 s long") as err:
        ex.extract_batch([Utterance("u1", "A", "", media={"audio": str(short)})])
    assert "short.wav" in str(err.value)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00not audio")
    with pytest.raises(DataError, match="cannot read audio"):
        ex.extract_batch([Utterance("u2", "A", "", media={"audio": str(corrupt)})])
    silent = _write_wav(tmp_path / "silent.wav", 1.0, amplitude=0.0)   # silence is encoded, finite
    assert np.isfinite(ex.extract_batch([Utterance("u3", "A", "", media={"audio": str(silent)})])).all()
    with pytest.raises(ConfigError, match="pooling"):
        get_extractor("audio:whisper", pooling="max")


def test_per_speaker_normalisation_uses_no_labels_and_keeps_cached_vectors(tmp_path):
    from lantern.data.dialogues import Utterance
    from lantern.features.normalise import apply_feature_norm

    shared = np.array([2.0, 4.0], np.float32)      # one cached vector shared by two utterances
    us = [Utterance("a1", "a", "", label=0, features={"f": shared}),
          Utterance("a2", "a", "", label=None, features={"f": np.array([4.0, 8.0], np.float32)}),
          Utterance("b1", "b", "", label=1, features={"f": shared})]
    out = apply_feature_norm("speaker", us, ["f"])
    assert out == {"mode": "speaker", "speakers": 2, "features": ["f"]}
    assert np.allclose(us[0].features["f"], [-1, -1]) and np.allclose(us[1].features["f"], [1, 1])
    assert np.allclose(us[2].features["f"], [0, 0])              # one utterance: centred
    assert np.allclose(shared, [2.0, 4.0])                       # not changed in place
    assert apply_feature_norm("none", us, ["f"]) is None
    with pytest.raises(ConfigError, match="feature_norm"):
        apply_feature_norm("dialogue", us, ["f"])


@pytest.mark.data
def test_fer2013_own_folds_are_stratified_deterministic_and_disjoint(data_root):
    from lantern.data.fer2013 import load_fer2013

    require_data("FER2013_test_images/test")
    ds = load_fer2013(data_root)
    sizes = {s: len(ds.utterances(s)) for s in ds.splits}
    assert sum(sizes.values()) == 3589 and sizes["train"] > 2400
    ids = {s: {u.id for u in ds.utterances(s)} for s in ds.splits}
    assert not (ids["train"] & ids["test"]) and not (ids["valid"] & ids["test"])
    assert all(c > 0 for c in ds.label_counts("test").values())      # disgust too (55 images)
    again = load_fer2013(data_root)
    assert [u.id for u in again.utterances("test")] == [u.id for u in ds.utterances("test")]
    assert ds.utterances("test")[0].media["image"].endswith(".jpg")


def test_optional_modalities_a_sample_has_whichever_it_has(tmp_path):
    import torch

    from lantern.data.dialogues import Dialogue, Utterance
    from lantern.features import attach_features
    from lantern.models.batching import FeatureSpec, collate

    voiced = Utterance("v", "A", "", features={"audio:x": np.array([2.0, 4.0], np.float32),
                                               "visual:x": np.array([1.0], np.float32)})
    face_only = Utterance("f", "B", "", features={"visual:x": np.array([3.0], np.float32)})
    train = [Dialogue("d1", [voiced]), Dialogue("d2", [face_only])]
    mods = {"audio": "audio:x", "visual": "visual:x"}
    with pytest.raises(DataError, match="audio:x"):
        FeatureSpec.fit(mods, train)                        # not optional: a missing vector is an error
    spec = FeatureSpec.fit(mods, train, optional=["audio"])
    assert spec.mean["audio"].tolist() == [2.0, 4.0]         # statistics over the clips that have it
    batch = collate(train, spec, None)
    assert batch.present["audio"].tolist() == [[True], [False]] and "visual" not in batch.present
    assert torch.equal(batch.features["audio"][1, 0], torch.zeros(2))
    assert FeatureSpec.from_config(spec.to_config()).optional == ("audio",)
    # an extractor of an optional modality skips utterances without its media, and counts them
    import wave
    path = tmp_path / "a.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.sin(np.arange(16000) / 10) * 3000).astype("<i2").tobytes())
    utts = [Utterance("a", "A", "", media={"audio": str(path)}), Utterance("i", "A", "", media={"image": "x.jpg"})]
    pytest.importorskip("opensmile")
    stats = attach_features(utts, ["audio:egemaps"], optional=["audio:egemaps"], progress=False, cache=False)
    assert stats["audio:egemaps"]["missing"] == 1 and "audio:egemaps" not in utts[1].features
    with pytest.raises(DataError, match="needs media"):
        attach_features(utts, ["audio:egemaps"], progress=False, cache=False)


def test_init_from_loads_a_saved_stage_per_seed(tmp_path):
    import torch

    from lantern.models.utterance import LinearClassifier
    from lantern.training.experiment import _init_from

    torch.manual_seed(0)
    first = LinearClassifier({"audio": 4}, 3)
    first.save_pretrained(tmp_path / "seed1" / "model")
    second = LinearClassifier({"audio": 4}, 3)
    _init_from(second, str(tmp_path / "seed{seed}" / "model").format(seed=1))
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    with pytest.raises(ConfigError, match="does not fit"):
        _init_from(LinearClassifier({"audio": 5}, 3), str(tmp_path / "seed1" / "model"))
    with pytest.raises(ConfigError, match="not a saved model"):
        _init_from(second, str(tmp_path / "nowhere"))


def test_a_speaker_normalised_model_normalises_new_input_and_needs_enough_clips():
    from lantern.data.dialogues import Utterance
    from lantern.features.normalise import normalise_for_model
    from lantern.models.batching import FeatureSpec
    from lantern.predict import _segment_options

    spec = FeatureSpec({"audio": "audio:x"}, {"audio": np.zeros(1, np.float32)},
                       {"audio": np.ones(1, np.float32)}, speaker_norm=True)
    assert FeatureSpec.from_config(spec.to_config()).speaker_norm
    clips = [Utterance(f"u{i}", "S1", "", features={"audio:x": np.array([float(i)], np.float32)})
             for i in range(4)]
    normalise_for_model(spec, clips)
    assert abs(float(np.mean([u.features["audio:x"][0] for u in clips]))) < 1e-6
    with pytest.raises(ConfigError, match="at least 4 clips"):
        normalise_for_model(spec, clips[:2])
    # segments of one recording read their own span of the shared WAV
    assert _segment_options(["audio:whisper", "text:minilm"], {}) == {"audio:whisper": {"segment": True}}


def test_ravdess_song_and_video_files_are_refused_by_name(tmp_path):
    with pytest.raises(DataError, match="song"):
        parse_name("Actor_01/03-02-01-01-01-01-01.wav")
    with pytest.raises(DataError, match="field 'modality'"):
        parse_name("Actor_01/01-01-01-01-01-01-01.mp4")
