"""The engine: what runs a prediction on an upload. :func:`lantern.web.create_app` takes any
object with the :class:`Engine` methods; :class:`PredictEngine` is the real one.

``run`` is called from worker threads (at most ``workers`` at a time), ``close`` once when
the app shuts down.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Protocol

from lantern.llm.base import LLM_OFF
from lantern.web.settings import ServeSettings


class Engine(Protocol):
    def run(self, input_path: Path, job_dir: Path, llm: str,
            display_name: str | None = None) -> Any:
        """Predict ``input_path`` into ``job_dir`` (report.html, predictions.*, the manifest)
        with the LLM backend ``llm`` ("off": no refinement); raise LanternError for bad input."""

    def close(self) -> None:
        """Release what ``run`` kept open (the LLM)."""


class PredictEngine:
    """Calls :func:`lantern.predict.predict` from worker threads, keeping one LLM open across
    requests (opening the embedded model costs seconds; llama.cpp serialises its own calls).

    ``predict`` and ``make_llm`` default to :mod:`lantern.predict`'s. The settings are
    checked now: a misconfiguration (openai without base_url) fails at start-up, not at the
    first upload.
    """

    def __init__(self, settings: ServeSettings, *, predict: Callable | None = None,
                 make_llm: Callable | None = None):
        import lantern.predict as predict_api

        self.settings = settings
        self._predict = predict or predict_api.predict
        self._make_llm = make_llm or predict_api.make_llm
        self._llm = None
        self._lock = threading.Lock()
        self.predict_settings(settings.llm)

    def predict_settings(self, llm: str, display_name: str | None = None):
        """The :class:`~lantern.predict.PredictSettings` of one upload."""
        from lantern.predict import PredictSettings

        options = dict(self.settings.predict_options)
        # media_paths=False: a path inside an uploaded file names a file on this server.
        options.update(llm=llm, display_name=display_name,
                       max_duration_s=self.settings.max_duration_s, progress=False, report=True,
                       media_paths=False)
        return PredictSettings(**options)

    def open_llm(self):
        """The shared LLM, opened on first use."""
        with self._lock:
            if self._llm is None:
                self._llm = self._make_llm(self.predict_settings(self.settings.llm))
            return self._llm

    def run(self, input_path: Path, job_dir: Path, llm: str, display_name: str | None = None):
        settings = self.predict_settings(llm, display_name)
        shared = self.open_llm() if llm != LLM_OFF else None
        return self._predict(input_path, job_dir, settings=settings, llm=shared)

    def close(self) -> None:
        with self._lock:
            llm, self._llm = self._llm, None
        if llm is not None and hasattr(llm, "close"):
            llm.close()
