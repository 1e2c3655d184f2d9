"""Loading: the data types and the loader are one API (sdsim.model re-exports the loader); the CLI's cached
loading gives the same model while the files are unchanged and a fresh one when a file changes."""

from __future__ import annotations

import shutil

import pytest
import yaml

from sdsim import loader, model
from sdsim.errors import InputError, ModelError
from tests.conftest import MODEL_DIR


def test_sdsim_model_re_exports_the_loader():
    assert model.load_model is loader.load_model
    assert model.default_model_dir is loader.default_model_dir
    from sdsim.model import load_model  # the documented import keeps working

    assert load_model is loader.load_model
    with pytest.raises(AttributeError):
        _ = model.no_such_name


def test_cached_loading_reuses_an_unchanged_model_and_reloads_an_edited_one(tmp_path):
    d = tmp_path / "model"
    shutil.copytree(MODEL_DIR, d)
    m1, c1 = loader.load_compiled(d)
    m2, c2 = loader.load_compiled(d)
    assert m1 is m2 and c1 is c2
    assert c1.model is m1
    assert c1.source == loader.load_compiled(MODEL_DIR)[1].source.replace(str(MODEL_DIR), str(d))

    params = d / "parameters.yaml"
    data = yaml.safe_load(params.read_text(encoding="utf-8"))
    name = next(iter(data["parameters"]))
    old = float(data["parameters"][name]["value"])
    data["parameters"][name]["value"] = 2 * old + 1
    params.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    m3, c3 = loader.load_compiled(d)
    assert m3 is not m1 and c3 is not c1
    assert m3.params[name].value == 2 * old + 1 and m1.params[name].value == old

    (d / "structure.yaml").write_text("stocks: [", encoding="utf-8")
    with pytest.raises(InputError, match="structure.yaml"):
        loader.load_compiled(d)


def test_cached_loading_of_a_missing_folder_gives_the_usual_error(tmp_path):
    with pytest.raises(ModelError, match="model directory not found"):
        loader.load_compiled(tmp_path / "nothing")
