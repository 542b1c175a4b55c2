"""Datasets registered by name; ``load_dataset("iemocap", label_set="4way-merge")``."""

from __future__ import annotations

from lantern.registry import Registry

DATASETS = Registry("dataset")
DATASETS.register("iemocap", "lantern.data.iemocap:load_iemocap")
DATASETS.register("meld", "lantern.data.meld:load_meld")
DATASETS.register("emorynlp", "lantern.data.emorynlp:load_emorynlp")
DATASETS.register("dailydialog", "lantern.data.dailydialog:load_dailydialog")
DATASETS.register("ravdess", "lantern.data.ravdess:load_ravdess")
DATASETS.register("fer2013", "lantern.data.fer2013:load_fer2013")
DATASETS.register("caer", "lantern.data.caer:load_caer")
DATASETS.register("emotic", "lantern.data.emotic:load_emotic")
DATASETS.register("bold", "lantern.data.bold:load_bold")
DATASETS.register("mix", "lantern.data.mix:load_mix")
DATASETS.register("conversation", "lantern.data.conversation:load_conversation")
DATASETS.register("cogmen-pickle", "lantern.data.official_pickles:load_cogmen_pickle")
DATASETS.register("sdt-pickle", "lantern.data.official_pickles:load_sdt_pickle")


def load_dataset(name: str, descriptions: str | None = None, **options):
    """Load a registered dataset; options go to its loader (``data_root``, ``label_set``, ...).
    ``descriptions`` (image datasets): a ``lantern describe`` output file whose texts become
    the images' utterance text (:mod:`lantern.data.descriptions`)."""
    dataset = DATASETS.get(name)(**options)
    if descriptions is not None:
        from lantern.data.descriptions import attach_descriptions

        attach_descriptions(dataset, descriptions)
    return dataset
