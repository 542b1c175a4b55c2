"""What a pipeline config names: its run folder, the vanilla model, the LLM, the refine
settings, where its answers live and the slug that names them."""

from __future__ import annotations

from pathlib import Path

from lantern.config import LLMSection
from lantern.errors import ConfigError

FUSION_SPLIT = "valid"   # mergers are trained on the validation split's answers, never on test


def output_dir(cfg: dict) -> Path:
    return Path(cfg.get("output_dir") or f"runs/{cfg['name']}")


def vanilla_config(cfg: dict) -> dict:
    """The vanilla model's training config (``vanilla.config`` + overrides), or, for
    ``vanilla.pretrained`` (a shipped model name or a saved model folder), a description of
    that model in the same shape (dataset, model name, features)."""
    from lantern.config import VanillaSection, load_config

    spec = VanillaSection.of(cfg)
    if spec.pretrained:
        return _pretrained_vanilla_config(cfg, spec)
    if not spec.config:
        raise ConfigError("a lantern pipeline config needs vanilla.config (a vanilla training config) "
                          "or vanilla.pretrained (a shipped model name or a saved model folder)")
    path = Path(spec.config)
    if not path.is_absolute() and not path.exists():
        path = Path(cfg.get("config_dir", ".")) / path
    vcfg = load_config(path, list(spec.overrides or []))
    vcfg["seeds"] = [int(spec.seed)]
    vcfg.setdefault("output_dir", str(vanilla_dir(cfg, vcfg)))
    return vcfg


def _pretrained_vanilla_config(cfg: dict, spec) -> dict:
    from lantern.models.bundle import read_metadata
    from lantern.predict.pretrained import model_dir

    directory = model_dir(str(spec.pretrained))
    saved = read_metadata(directory)
    dataset = {"name": saved.get("dataset"), "label_set": saved.get("label_set")}
    given = {}
    for o in spec.overrides or []:        # e.g. dataset.data_root=..., dataset.name=dailydialog
        key, _, value = str(o).partition("=")
        if key.startswith("dataset."):
            given[key.split(".", 1)[1]] = value
    if given.get("name", dataset["name"]) != dataset["name"]:
        dataset["label_set"] = None       # another corpus: its own labels unless one is given
    dataset.update(given)
    # The LLM is asked about the model's classes; the data keeps its own gold labels.
    vcfg = {"pretrained": str(directory), "dataset": dataset, "model": {"name": directory.name},
            "model_label_set": saved.get("label_set"),
            "features": (saved.get("feature_spec") or {}).get("modalities", {}), "seeds": [0]}
    return {**vcfg, "output_dir": str(vanilla_dir(cfg, vcfg))}


def vanilla_name(vcfg: dict) -> str:
    """The vanilla model's name in run folders, answer folders and results: its registry name,
    plus what its training recipe's name adds after it (``iemocap-sdt-ft.yaml``: ``sdt-ft``;
    ``iemocap-sdt.yaml``: ``sdt``), so two recipes of one architecture never share predictions,
    answers or pinned files.

    >>> vanilla_name({"name": "iemocap-context-ft", "model": {"name": "context"}})
    'context-ft'
    >>> vanilla_name({"name": "iemocap-sdt", "model": {"name": "sdt"}})
    'sdt'
    >>> vanilla_name({"name": "iemocap-context-ens5", "model": {"name": "ensemble", "member": "context"}})
    'ensemble-iemocap-context-ens5'
    """
    model = str((vcfg.get("model") or {}).get("name") or "")
    recipe = str(vcfg.get("name") or "")
    if model == "ensemble" and recipe and not vcfg.get("pretrained"):   # its recipe names it
        return f"ensemble-{recipe}"
    if vcfg.get("pretrained") or not model or f"-{model}-" not in f"-{recipe}-":
        return model
    tail = f"-{recipe}-".split(f"-{model}-", 1)[1].strip("-")
    return f"{model}-{tail}" if tail else model


def vanilla_dir(cfg: dict, vcfg: dict) -> Path:
    """``<run>/vanilla/<dataset>-<label set>-<vanilla name>``: one folder per vanilla model, so
    runs of one pipeline config with another vanilla model or label set (``--set``) never
    reuse each other's predictions."""
    return output_dir(cfg) / "vanilla" / vanilla_key(vcfg)


def vanilla_key(vcfg: dict) -> str:
    """``<dataset>-<label set>-<vanilla name>``: what identifies a vanilla model's predictions."""
    ds = vcfg.get("dataset") or {}
    return "-".join(str(p) for p in (ds.get("name"), ds.get("label_set"), vanilla_name(vcfg)) if p)


def shared_pins_dir(cfg: dict, vcfg: dict) -> Path | None:
    """``answers_root/vanilla/<vanilla key>``: the pinned vanilla predictions every run of that
    vanilla model shares (the first run writes them), or None without ``answers_root``."""
    if not cfg.get("answers_root") or cfg.get("answers_dir"):
        return None
    return Path(cfg["answers_root"]) / "vanilla" / vanilla_key(vcfg)


def make_llm(cfg: dict):
    from lantern.llm import get_llm

    section = LLMSection.of(cfg)
    return get_llm(section.backend, model=section.model, **(section.options or {}))


def refine_settings(cfg: dict):
    from lantern.refine import RefineSettings

    try:
        return RefineSettings(**(cfg.get("fields") or {}), **(cfg.get("prompt") or {}))
    except TypeError as exc:   # configs from files are checked on load; this guards dicts
        raise ConfigError(f"fields/prompt: {exc}") from None


def answers_dir(cfg: dict, limit: int | None = None) -> Path:
    """Where a run's answer files live: ``answers_dir``, else
    ``answers_root/<run_slug>`` (the benchmarks commit theirs under ``benchmarks/answers/``),
    else the run folder. A ``--limit`` run (whose vanilla model saw only N dialogues) keeps
    its answers in its run folder, never beside the full run's."""
    settings = refine_settings(cfg)
    if limit is not None:
        return output_dir(cfg) / f"answers{settings.variant_suffix}-limit{limit}"
    if cfg.get("answers_dir"):
        return Path(cfg["answers_dir"])
    if cfg.get("answers_root"):
        return Path(cfg["answers_root"]) / run_slug(cfg)
    return output_dir(cfg) / ("answers" + settings.variant_suffix)


def run_slug(cfg: dict) -> str:
    """``iemocap-6way-sdt-qwen2.5-coder-1.5b-logprobs-w6s2`` (+ ``-no-refs`` / ``-no-vad``):
    names a run's answers by everything that changes them."""
    settings = refine_settings(cfg)
    vcfg = vanilla_config(cfg)
    llm = (cfg.get("llm") or {}).get("model") or "default"
    parts = [vcfg["dataset"]["name"], vcfg["dataset"].get("label_set") or "", vanilla_name(vcfg),
             str(llm).replace("/", "_"), settings.answer_tag]
    return "-".join(p for p in parts if p) + settings.variant_suffix + f"-w{settings.window}s{settings.stride}"
