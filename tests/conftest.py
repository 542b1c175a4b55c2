"""Shared fixtures. Tests that need ../shared/data skip when it is absent, except in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    return Path(os.environ.get("LANTERN_DATA_ROOT") or REPO.parent / "shared" / "data")


@pytest.fixture(autouse=True)
def _two_threads():
    import torch
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data root; skip (or fail under CI=true) when a needed dataset is missing."""
    return _data_root()


def require_data(relative: str) -> Path:
    """Path of a file or folder under the data root, or skip/fail with a clear reason."""
    path = _data_root() / relative
    if not path.exists():
        reason = f"real data {path} is absent (set LANTERN_DATA_ROOT)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; it is mandatory in CI")
        pytest.skip(reason)
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own cache dir so tests never touch the user's cache."""
    monkeypatch.setenv("LANTERN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
