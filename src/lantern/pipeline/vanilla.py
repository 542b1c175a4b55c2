"""Stage 1: the vanilla model's predictions, and the copy pinned beside a run's answers."""

from __future__ import annotations

from pathlib import Path

from lantern.errors import DataError
from lantern.pipeline.settings import vanilla_config
from lantern.records import PredictionRow, read_pinned, write_pinned


def stage_vanilla(cfg: dict, limit: int | None = None, progress: bool = True) -> Path:
    """Train the vanilla model (or load the pretrained one) unless its predictions exist;
    return the predictions folder."""
    vcfg = vanilla_config(cfg)
    out = Path(vcfg["output_dir"])
    if limit is not None:
        out = out.with_name(out.name + f"-limit{limit}")
    preds = out / f"seed{vcfg['seeds'][0]}" / "predictions"
    if (preds / "test.jsonl").exists():
        return preds
    if vcfg.get("pretrained"):
        _export_pretrained(vcfg, preds, limit, progress)
    else:
        from lantern.training.experiment import run_experiment
        run_experiment(vcfg, limit=limit, progress=progress, results_dir=None)
    return preds


def _export_pretrained(vcfg: dict, preds: Path, limit: int | None, progress: bool) -> None:
    from lantern.data import load_dataset
    from lantern.features import attach_features
    from lantern.predict.pretrained import load_bundle
    from lantern.records import write_predictions

    bundle = load_bundle(vcfg["pretrained"])
    options = {k: v for k, v in vcfg["dataset"].items() if k != "name" and v is not None}
    ds = load_dataset(vcfg["dataset"]["name"], **options).limit(limit)
    names = bundle.feature_names
    attach_features(ds, names, options=bundle.feature_options_for(names), progress=progress)
    for split in ("valid", "test"):
        write_predictions(preds / f"{split}.jsonl",
                          bundle.prediction_rows(ds.dialogues(split), ds.label_set))


def pinned_file(folder: Path, split: str) -> Path:
    return folder / f"vanilla-{split}.jsonl.gz"


def pin_vanilla(rows: list[PredictionRow], folder: Path, split: str,
                shared: Path | None = None) -> list[PredictionRow]:
    """The vanilla predictions the answers were asked with. The first run writes them next
    to its answers; later runs (another machine, where a retrained vanilla model may differ
    in the last digits and so change every prompt) take probabilities, dimension scores and
    labels from that file, and only the texts from the data set.

    ``shared`` (``answers_root/vanilla/<vanilla key>``): the pins every run of this vanilla
    model shares. A run without its own file copies the shared one (so its folder still holds
    all that ``lantern fuse`` reads); the first run of a vanilla model writes both. Runs of
    one vanilla model (t = 1 ... 4, the ablations) are then asked with the same predictions
    on any machine."""
    import shutil

    path = pinned_file(folder, split)
    common = pinned_file(shared, split) if shared is not None else None
    if not path.exists() and common is not None and common.exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(common, path)
    if not path.exists():
        write_pinned(path, rows)
        if common is not None and not common.exists():
            common.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, common)
        return rows
    pinned = {r.key: r for r in read_pinned(path)}
    out = []
    for r in rows:
        p = pinned.get(r.key)
        if p is None:
            raise DataError(f"utterance {r.dialogue_id}/{r.utterance_id} is not in the pinned "
                            f"vanilla predictions; they belong to another data set or split", path=path)
        out.append(r.with_pinned(p))
    return out
