"""The Yubei model and its scenarios, installed as package data (``model/`` and ``scenarios/`` of the repository).

``pip install .`` copies them here, so the installed ``simulate`` command works from any folder; in a source
checkout the repository's own folders are used instead.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def model_dir() -> Path:
    """The bundled model folder: the repository's ``model/`` in a checkout, else the installed copy."""
    repo = REPO / "model"
    return repo if (repo / "structure.yaml").is_file() else HERE / "model"


def scenarios_dir() -> Path:
    """The bundled scenarios: the repository's ``scenarios/`` in a checkout, else the installed copy."""
    repo = REPO / "scenarios"
    return repo if (repo / "baseline.yaml").is_file() and (REPO / "model" / "structure.yaml").is_file() \
        else HERE / "scenarios"
