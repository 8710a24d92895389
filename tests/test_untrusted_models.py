"""Model files from untrusted sources: loading one runs no code it carries. Lambda layers (a named function, or a
lambda whose bytecode Keras stores) are refused before Keras reads the file, with a message naming the file and the
layers; through the CLI as well."""
import pytest

from tao_nb.core import TaoNbError, import_tensorflow
from tao_nb.models.ssd import load_keras_model
from conftest import tao_nb

import_tensorflow()
import keras  # noqa: E402


def trojan(path, marker):
    """A .keras file whose Lambda layers would create `marker` if their code ever ran."""
    def payload(x, marker=str(marker)):
        open(marker, "w").write("code ran")
        return x
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(payload, name="named_function")(inp)
    m = str(marker)
    x = keras.layers.Lambda(lambda t, m=m: (open(m, "w").write("code ran"), t)[1], name="bytecode")(x)
    keras.Model(inp, x).save(path)
    marker.unlink(missing_ok=True)  # building the model above called the payloads once


def test_a_lambda_layer_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    trojan(tmp_path / "trojan.keras", marker)
    with pytest.raises(TaoNbError, match=r"trojan\.keras: refused: bytecode, named_function are Lambda layers, which carry Python code"):
        load_keras_model(tmp_path / "trojan.keras")
    assert not marker.exists()


def test_the_cli_refuses_it_too(tmp_path, sample):
    marker = tmp_path / "pwned"
    trojan(tmp_path / "trojan.keras", marker)
    out = tao_nb("ssd", "evaluate", "-m", tmp_path / "trojan.keras", "-e", sample("untrusted.txt"))
    assert out.returncode == 1 and "refused: bytecode, named_function are Lambda layers" in out.stderr
    assert "Traceback" not in out.stderr
    assert not marker.exists()
