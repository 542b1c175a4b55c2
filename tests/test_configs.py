"""Smoke run of every recipe in configs/ on a few real dialogues (as SpeechBrain does)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, require_data, require_llm_runtime
from image_corpora import bold_fixture, caer_fixture, emotic_fixture, write_descriptions
from lantern.config import load_config
from lantern.evaluation.results import REQUIRED_KEYS
from lantern.training.experiment import run_experiment

ALL_CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))
# Pipeline configs (lantern-*.yaml) run end to end in tests/test_pipeline.py.
CONFIGS = [p for p in ALL_CONFIGS if not p.name.startswith("lantern-")]
DATA = {"iemocap": "IEMOCAP_ERC_joined/iemocap_erc_utterances.csv", "meld": "MELD_declare-lab/MELD",
        "emorynlp": "MELD_declare-lab/emorynlp", "dailydialog": "conv-emotion_RECCON/dailydialog_train.json",
        "ravdess": "RAVDESS_speech_16k", "fer2013": "FER2013_test_images/test"}
# Corpora that cannot be obtained here: their recipes run on synthetic fixtures of the official
# layout (tests/image_corpora.py), with a descriptions file for every image and box.
FIXTURES = {"emotic": lambda root: emotic_fixture(root, images=True),
            "caer": lambda root: caer_fixture(root, {"train": 10, "test": 1}), "bold": bold_fixture}


def _corpora(cfg: dict) -> list[str]:
    """The corpora a training config reads (a mix's corpora, and those of ``evaluate_on``)."""
    ds = cfg["dataset"]
    names = list(ds.get("corpora", DATA)) if ds["name"] == "mix" else [ds["name"]]
    return names + [c if isinstance(c, str) else c["name"] for c in cfg.get("evaluate_on") or []]


def test_there_are_configs():
    assert len(CONFIGS) >= 6


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=[p.relative_to(REPO / "configs").with_suffix("").as_posix() for p in ALL_CONFIGS])
def test_config_has_no_absolute_paths(path):
    text = path.read_text()
    assert "/work/" not in text and "/home/" not in text and "/root" not in text


@pytest.mark.data
@pytest.mark.parametrize("path", CONFIGS, ids=[p.relative_to(REPO / "configs").with_suffix("").as_posix() for p in CONFIGS])
def test_config_smoke_run(path, tmp_path, data_root, capsys):
    cfg = load_config(path, ["seeds=[0]", "training.epochs=2", f"output_dir={tmp_path / 'run'}",
                             f"dataset.data_root={data_root}"])
    if cfg["dataset"]["name"] in FIXTURES:
        _fixture_corpus(cfg, tmp_path / "data")
    for corpus in _corpora(cfg):
        if corpus not in FIXTURES:
            require_data(DATA[corpus])
    if "text_encoder" in cfg:
        cfg["text_encoder"]["options"]["epochs"] = 1
    for name in {"text:qwen", "text:qwen-dialogue"} & set(cfg["features"].values()):
        require_llm_runtime()   # CI installs the 135M model only: the same code path
        cfg.setdefault("feature_options", {}).setdefault(name, {})["model"] = "smollm2-135m"
    if cfg.get("init_from"):   # a second stage: its first stage on the same tiny data first
        _first_stage(cfg, tmp_path)
    result = run_experiment(cfg, limit=2, progress=False, results_dir=tmp_path / "results")
    missing = [k for k in REQUIRED_KEYS if k not in result]
    assert not missing
    assert result["selection_split"] == "valid" and result["method"] == cfg.get("method", "vanilla")
    score = "mAP" if result.get("multi_label") else "weighted_f1"
    assert 0 <= result["metrics"][score]["mean"] <= 100
    assert result["train_dataset"] == "+".join(cfg["dataset"].get("corpora") or [cfg["dataset"]["name"]])
    for corpus in cfg.get("evaluate_on") or []:
        for split in ("valid", "test"):
            scores = result["cross_corpus"][corpus][split]
            assert 0 <= scores["weighted_f1"]["mean"] <= 100 and scores["scored"] > 0
    written = json.loads(Path(result["result_file"]).read_text())
    assert written["config"]["model"]["name"] == cfg["model"]["name"]
    if not result.get("multi_label"):
        assert (tmp_path / "results" / Path(result["confusion_png"]).name).exists()
    run = Path(result["output_dir"])
    for split in ("train", "valid", "test"):
        rows = (run / "seed0" / "predictions" / f"{split}.jsonl").read_text().splitlines()
        assert rows and "probs" in json.loads(rows[0])
    assert (run / "seed0" / "model" / "model.safetensors").exists()
    if cfg["dataset"]["name"] in FIXTURES:   # the saved model scores again with lantern evaluate
        _evaluate_again(cfg, run / "seed0" / "model", score, capsys)


def _first_stage(cfg: dict, tmp_path: Path) -> None:
    """Train ``cfg`` without ``init_from`` and ``reasons`` (stage 1), then point it there."""
    first = {k: v for k, v in cfg.items() if k not in ("init_from", "reasons")}
    first["output_dir"] = str(tmp_path / "stage1")
    run_experiment(first, limit=2, progress=False, results_dir=tmp_path / "results1")
    cfg["init_from"] = str(tmp_path / "stage1-limit2" / "seed{seed}" / "model")


def _evaluate_again(cfg: dict, model: Path, score: str, capsys) -> None:
    from lantern.cli import main

    args = ["evaluate", str(model), "--data-root", cfg["dataset"]["data_root"], "--limit", "2", "--no-progress"]
    capsys.readouterr()
    assert main(args) == 2 and "--descriptions" in capsys.readouterr().err
    assert main(args + ["--descriptions", cfg["dataset"]["descriptions"]]) == 0
    report = json.loads(capsys.readouterr().out)["test"]
    assert 0 <= report[{"mAP": "mAP", "weighted_f1": "weighted_f1"}[score]] <= 100


def _fixture_corpus(cfg: dict, root: Path) -> None:
    """Build the corpus's fixture under ``root`` and describe its images (as ``lantern
    describe --dataset`` would) into the file the recipe reads."""
    from lantern.data import load_dataset

    name = cfg["dataset"]["name"]
    FIXTURES[name](root)
    cfg["dataset"]["data_root"] = str(root)
    cfg["dataset"]["descriptions"] = str(write_descriptions(root / "descriptions.jsonl",
                                                            load_dataset(name, data_root=root)))


@pytest.mark.parametrize("text, key", [
    ("vanilla: {config: iemocap-sdt.yaml}\nfusoin: {}\n", "'fusoin'; did you mean 'fusion'"),
    ("vanilla: {config: iemocap-sdt.yaml}\nfields: {widnow: 4}\n", "'fields.widnow'; did you mean 'window'"),
    ("vanilla: {config: iemocap-sdt.yaml}\nprompt: {answr: logprobs}\n", "'prompt.answr'"),
    ("dataset: {name: iemocap, labelset: 6way}\nmodel: {name: sdt}\nfeatures: {}\n", "'dataset.labelset'"),
    ("dataset: {name: iemocap}\nmodel: {name: sdt, hiden: 3}\nfeatures: {}\n", "'model.hiden'; did you mean 'hidden'"),
    ("dataset: {name: iemocap}\nmodel: {name: sdt}\nfeatures: {}\ntraining: {epoch: 3}\n", "'training.epoch'"),
    ("dataset: {name: iemocap}\nmodel: {name: context}\nfeatures: {}\ncv: {fold: 0, folds: 4, gruop: x}\n",
     "'cv.gruop'"),
    # an ensemble's options are its member's
    ("dataset: {name: iemocap}\nmodel: {name: ensemble, member: sdt, size: 3, heads: 2, hiden: 8}\nfeatures: {}\n",
     "'model.hiden'"),
])
def test_an_unknown_key_names_the_file_and_the_key(tmp_path, text, key):
    from lantern.errors import ConfigError

    path = tmp_path / "typo.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"typo.yaml: unknown key {key}"):
        load_config(path)


def test_every_shipped_config_loads():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        assert load_config(path)["name"] == path.stem
