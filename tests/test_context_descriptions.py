"""Context descriptions as model input (issue #13): the template writer, description files as
utterance text, and MiniLM token embeddings whose padding context-qformer does not attend to."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from conftest import require_data
from lantern.data import load_dataset
from lantern.data.descriptions import attach_descriptions, read_descriptions
from lantern.data.dialogues import Dialogue, EmotionDataset, Utterance
from lantern.data.labels import FER2013_7
from lantern.describe.describers import (NOT_SEEN_TEMPLATE, ObservationsDescriber, describe_images,
                                         template_text)
from lantern.errors import ConfigError, DataError
from lantern.features import get_extractor, unscaled_modalities
from lantern.llm import sha256_file
from lantern.models.batching import FeatureSpec, collate

CLASSES = list(FER2013_7.classes)


class NoLLM:
    model_id = "none"

    def chat(self, request):     # the template writer must never call it
        raise AssertionError("the template writer called the LLM")

    def close(self):
        pass


# -- the template writer ------------------------------------------------------------------

def test_template_text_leads_with_the_expression_and_handles_no_face():
    text = template_text({"subject": "no box given: the whole image", "lighting": "bright",
                          "face": "no face found"})
    assert text == "No face was found. The lighting is bright; no box given: the whole image."


def test_an_unknown_writer_is_a_config_error():
    with pytest.raises(ConfigError, match="writer must be one of llm, template"):
        ObservationsDescriber(writer="poem")


def test_template_and_llm_writers_have_different_cache_identities():
    llm = ObservationsDescriber(llm=NoLLM()).identity(CLASSES, None)
    template = ObservationsDescriber(writer="template").identity(CLASSES, None)
    assert template["writer"] == "template" and "model" not in template and llm != template


@pytest.mark.data
def test_the_template_writer_calls_no_llm_and_says_so(tmp_path):
    pytest.importorskip("mediapipe")
    face = sorted(require_data("FER2013_test_images/test/happy").glob("*.jpg"))[0]
    d = ObservationsDescriber(llm=NoLLM(), writer="template")
    out = describe_images([face], d, CLASSES)[0]
    d.close()
    assert out.status == "ok" and out.prompt_tokens == out.completion_tokens == 0
    assert out.text.startswith("The expression model reads ") and NOT_SEEN_TEMPLATE in out.text
    assert NOT_SEEN_TEMPLATE in out.notes and out.model is None


# -- description files as utterance text ----------------------------------------------------

def _images(tmp_path, n=3):
    from PIL import Image

    paths = []
    for i in range(n):
        p = tmp_path / f"img{i}.png"
        Image.new("L", (8, 8), color=40 * i).save(p)
        paths.append(p)
    return paths


def _dataset(paths) -> EmotionDataset:
    dialogues = [Dialogue(f"d{i}", [Utterance(f"d{i}", "face", "", label=0, media={"image": str(p)})], "train")
                 for i, p in enumerate(paths)]
    return EmotionDataset("tiny", FER2013_7, {"train": dialogues})


def _line(path, text, status="ok") -> str:
    return json.dumps({"image": str(path), "sha256": sha256_file(path), "describer": "observations",
                       "status": status, "text": text})


def test_descriptions_become_the_utterance_text_matched_by_image_hash(tmp_path):
    paths = _images(tmp_path)
    lines = [_line(p, f"text {i}") for i, p in enumerate(paths)]
    lines.append(_line(paths[0], "text 0, resumed"))          # a later line wins
    lines.append(_line(paths[1], None, status="failed"))       # failed lines are left out
    file = tmp_path / "descriptions.jsonl.gz"
    file.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    ds = attach_descriptions(_dataset(paths), file)
    assert [u.text for u in ds.utterances("train")] == ["text 0, resumed", "text 1", "text 2"]
    assert ds.source["descriptions"] == {"file": file.name, "describers": ["observations"],
                                         "writers": ["llm"], "images": 3}   # no writer: the LLM


def test_an_image_without_a_description_names_the_image(tmp_path):
    paths = _images(tmp_path)
    file = tmp_path / "descriptions.jsonl"
    file.write_text(_line(paths[0], "only one") + "\n")
    with pytest.raises(DataError, match=r"2 image\(s\) have no ok description, e\.g\. .*img1\.png") as err:
        attach_descriptions(_dataset(paths), file)
    assert "descriptions.jsonl" in str(err.value)


@pytest.mark.parametrize("content, line, match", [
    ('{"sha256": "a", "status": "ok", "text": "x"}\nnot json\n', 2, "invalid JSON"),
    ('[1, 2]\n', 1, "each line must be a JSON object"),
    ('{"status": "ok", "text": "x"}\n', 1, "missing or non-string 'sha256'"),
    ('{"sha256": "a", "status": "ok", "text": "  "}\n', 1, "an ok description with no text"),
])
def test_a_bad_descriptions_file_names_the_line(tmp_path, content, line, match):
    file = tmp_path / "d.jsonl"
    file.write_text(content)
    with pytest.raises(DataError, match=match) as err:
        read_descriptions(file)
    assert f"d.jsonl:{line}" in str(err.value) or f"line {line}" in str(err.value)


def test_a_broken_gzip_file_is_a_data_error(tmp_path):
    file = tmp_path / "d.jsonl.gz"
    file.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_descriptions(file)


@pytest.mark.data
def test_the_committed_fer2013_descriptions_cover_every_image(data_root):
    from conftest import REPO

    require_data("FER2013_test_images/test")
    file = REPO / "benchmarks/descriptions/fer2013-observations-template.jsonl.gz"
    ds = load_dataset("fer2013", data_root=data_root, descriptions=str(file))
    texts = [u.text for s in ("train", "valid", "test") for u in ds.utterances(s)]
    assert len(texts) == 3589 and all(t.startswith(("The expression model", "No face")) for t in texts)


# -- token embeddings and their padding ------------------------------------------------------

@pytest.fixture(scope="module")
def tokens():
    ex = get_extractor("text:minilm-tokens", tokens=12)
    yield ex
    ex.close()


def test_minilm_tokens_pad_with_nan_after_the_text(tokens):
    utts = [Utterance("a", "A", "happy"), Utterance("b", "A", "a much longer sentence " * 5)]
    x = tokens.extract_batch(utts).reshape(2, 12, 384)
    assert tokens.dim == 12 * 384
    short = ~np.isnan(x[0]).all(axis=1)
    assert short.tolist() == [True] * 3 + [False] * 9          # [CLS] happy [SEP]
    assert np.isfinite(x[1]).all()                               # truncated at 12 word pieces
    again = tokens.extract_batch(utts[:1]).reshape(12, 384)
    np.testing.assert_allclose(x[0][short], again[short], atol=1e-5)


def test_token_padding_reaches_context_qformer_as_masked_zero_rows(tokens):
    from lantern.models.context_qformer import _tokens

    utts = [Utterance(f"u{i}", "A", t, label=0) for i, t in enumerate(["happy", "sad and tired today"])]
    raw = tokens.extract_batch(utts)
    for u, v in zip(utts, raw):
        u.features["text:minilm-tokens"] = v
    n_real = (~np.isnan(raw.reshape(2, 12, 384)).all(axis=2)).sum(axis=1).tolist()
    dialogues = [Dialogue(u.id, [u]) for u in utts]
    features = {"text": "text:minilm-tokens"}
    assert unscaled_modalities(features) == ("text",)
    spec = FeatureSpec.fit(features, dialogues, unscaled=unscaled_modalities(features))
    batch = collate(dialogues, spec, None)
    flat = batch.features["text"].reshape(2, -1)
    tok, pad = _tokens(flat, 12)
    assert torch.isfinite(tok).all()
    np.testing.assert_allclose(tok[0, :3].numpy(), raw[0].reshape(12, 384)[:3], atol=1e-6)
    assert n_real[0] == 3 and pad[0].tolist() == [False] * 3 + [True] * 9
    assert pad[1].sum() == 12 - n_real[1]
    assert (tok[pad] == 0).all()


# -- lantern predict --system context ---------------------------------------------------------

@pytest.mark.data
def test_predict_system_context_describes_and_labels_each_image(tmp_path, data_root):
    import shutil

    from conftest import REPO
    from lantern.config import load_config
    from lantern.predict import PredictSettings, predict
    from lantern.training.experiment import run_experiment

    root = require_data("FER2013_test_images/test")
    pytest.importorskip("mediapipe")
    cfg = load_config(REPO / "configs/fer2013/context-qformer.yaml",
                      ["seeds=[0]", "training.epochs=1", f"output_dir={tmp_path / 'run'}",
                       f"dataset.data_root={data_root}"])
    run_experiment(cfg, limit=2, progress=False, results_dir=None)
    model = tmp_path / "run-limit2" / "seed0" / "model"      # --limit runs get the suffix
    images = tmp_path / "photos"
    images.mkdir()
    for c in ("happy", "sad"):
        shutil.copy(sorted((root / c).glob("*.jpg"))[0], images / f"{c}.jpg")
    out = predict(images, tmp_path / "out", PredictSettings(system="context", model=str(model),
                                                            progress=False))
    doc = out.document
    assert doc["system"] == "context" and doc["input"]["kind"] == "images" and doc["llm"] is None
    assert len(doc["utterances"]) == 2
    for u in doc["utterances"]:
        assert u["text"].startswith("The expression model reads ") and NOT_SEEN_TEMPLATE in u["text"]
        assert u["description"]["text"] == u["text"] and u["description"]["prompt_tokens"] == 0
        assert abs(sum(u["vanilla"]["probs"].values()) - 1) < 1e-4 and u["final"] in CLASSES
    assert out.report_path is not None and "The expression model reads" in out.report_path.read_text()
    with pytest.raises(ConfigError, match="use --system context"):
        predict(images, tmp_path / "out2", PredictSettings(model=str(model), llm="off", progress=False))
    assert PredictSettings(system="context").model is None     # the shipped fer2013-context
    with pytest.raises(DataError, match="--system context reads images"):
        predict(REPO / "README.md", tmp_path / "out3",
                PredictSettings(system="context", model=str(model), progress=False))


# -- what a single-stream ablation reads, and the shipped model ---------------------------

def test_a_single_stream_ablation_extracts_only_its_stream():
    from lantern.training.experiment import features_read

    cfg = {"model": {"name": "context-qformer", "text": "text", "image": "visual", "streams": "fused"},
           "features": {"text": "text:minilm-tokens", "visual": "visual:vits14"}}
    assert features_read(cfg) is cfg
    text_only = features_read({**cfg, "model": {**cfg["model"], "streams": "text-only"}})
    assert text_only["features"] == {"text": "text:minilm-tokens"} and "visual" in cfg["features"]
    image_only = features_read({**cfg, "model": {**cfg["model"], "streams": "image-only"}})
    assert image_only["features"] == {"visual": "visual:vits14"}
    sdt = {"model": {"name": "sdt"}, "features": {"text": "text:minilm", "audio": "audio:iemocap8"}}
    assert features_read(sdt) is sdt                              # other models read everything


def test_the_shipped_context_model_describes_itself():
    from lantern.models.card import CARD_NAME
    from lantern.predict.pretrained import SYSTEM_DEFAULT_MODEL, default_model, load_bundle, shipped_model_dir

    name = default_model("context")
    assert name == SYSTEM_DEFAULT_MODEL["context"]
    bundle = load_bundle(name)
    assert bundle.model.model_type == "context-qformer" and bundle.classes == tuple(CLASSES)
    assert bundle.text_source["describers"] == ["observations"] and bundle.text_source["writers"] == ["template"]
    assert bundle.feature_names == ["text:minilm-tokens"]        # text-only: no image encoder needed
    card = (shipped_model_dir(name) / CARD_NAME).read_text()
    assert "no model looked at the scene" in card and "-dirty" not in card
    assert "`text-only` variant" in card                          # why this variant: validation
    with pytest.raises(ConfigError, match="lantern needs --model"):   # a system that ships none
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(SYSTEM_DEFAULT_MODEL, "lantern", None)
            default_model("lantern")


def test_the_describer_cost_script_states_tokens_and_the_ratio_to_their_cost(tmp_path):
    """scripts/bench_describe.py: seconds per image against what its tokens cost at the speeds
    measured in the same run; the sample file keeps image paths relative to the data root."""
    import importlib.util

    from conftest import REPO
    from lantern.describe.describers import Description

    spec = importlib.util.spec_from_file_location("bench_describe", REPO / "scripts" / "bench_describe.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    root = tmp_path / "data"
    (root / "faces").mkdir(parents=True)
    described = [Description(str(root / "faces" / f"{i}.jpg"), "ab" * 32, "observations", 1, "text", {},
                             ["a note"], None, "m", 100, 40, seconds, "ok" if i else "failed")
                 for i, seconds in enumerate((3.0, 5.0))]
    speed = {"prompt_tokens_per_s": 100.0, "generation_tokens_per_s": 20.0, "load_seconds": 0.5}
    out = script.summary(described, speed)
    assert out["images"] == 2 and out["failed"] == 1 and out["seconds_per_image"]["mean"] == 4.0
    assert out["prompt_tokens_per_image"] == 100 and out["seconds_vs_token_cost"] == pytest.approx(4.0 / 3.0)
    assert "prompt_tokens_per_image" not in script.summary(described, None)   # the template writer
    script.write_sample(described, root, tmp_path / "sample.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "sample.jsonl").read_text().splitlines()]
    assert [r["image"] for r in rows] == ["faces/0.jpg", "faces/1.jpg"] and "notes" not in rows[0]
