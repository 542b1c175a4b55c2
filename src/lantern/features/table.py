"""Pass-through extractors for vectors a dataset loader already stored on the utterances.

``audio:iemocap8``: the 8 acoustic descriptors of the IEMOCAP table (signal mean/std, RMS
energy mean/std, silence ratio, harmonic ratio, autocorrelation max/std), which
:func:`lantern.data.iemocap.load_iemocap` puts into ``u.features["audio:iemocap8"]``. Nothing
is computed or cached; the extractor checks that every utterance has a finite 8-d vector.

>>> import numpy as np
>>> from lantern.data.dialogues import Utterance
>>> ex = StoredFeatureExtractor()
>>> ex.extract_batch([Utterance("u1", "F", "hi", features={"audio:iemocap8": np.ones(8)})]).shape
(1, 8)
>>> ex.extract_batch([Utterance("u2", "F", "hi")])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
lantern.errors.DataError: field 'features.audio:iemocap8': utterance u2 has no stored 'audio:iemocap8' vector; ...
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lantern.errors import DataError
from lantern.features.base import FeatureExtractor


class StoredFeatureExtractor(FeatureExtractor):
    """Validates and returns ``u.features[name]`` (set by the dataset loader)."""

    name = "audio:iemocap8"
    modality = "audio"
    dim = 8
    cacheable = False
    batch_size = 1024
    source = ("only the IEMOCAP loader (lantern.data.load_dataset('iemocap')) provides it; "
              "4 IEMOCAP utterances have empty ac_* columns and therefore lack it")

    def input_key(self, utterance) -> str:
        return utterance.id

    def extract_batch(self, utterances: Sequence) -> np.ndarray:
        out = np.zeros((len(utterances), self.dim), dtype=np.float32)
        for i, u in enumerate(utterances):
            vec = (u.features or {}).get(self.name)
            if vec is None:
                raise DataError(f"utterance {u.id} has no stored {self.name!r} vector; {self.source}",
                                field=f"features.{self.name}")
            vec = np.asarray(vec, dtype=np.float32).reshape(-1)
            if vec.size != self.dim:
                raise DataError(f"utterance {u.id}: stored {self.name!r} has {vec.size} values, "
                                f"expected {self.dim}", field=f"features.{self.name}")
            if np.all(np.isnan(vec)):  # a missing measurement, imputed at training time
                out[i] = vec
                continue
            if not np.all(np.isfinite(vec)):
                raise DataError(f"utterance {u.id}: stored {self.name!r} has non-finite values",
                                field=f"features.{self.name}")
            out[i] = vec
        return out
