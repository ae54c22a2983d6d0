"""The recipes' configs of the encoder-based SER baselines name real options and build on mini_emo."""

import inspect
from pathlib import Path

import pytest
import yaml

from ent.models.ser import ser_model_class
from ent.features.ssl import SSLFrontend
from tiny_ent_experiment import EMOTIONS

REPO = Path(__file__).resolve().parents[3]
MODELS = ("cta_rnn", "asr_output_fusion", "multilevel_fusion")


@pytest.mark.parametrize("corpus", ["mini_emo", "iemocap"])
@pytest.mark.parametrize("name", MODELS)
def test_config_keys_are_constructor_options(corpus: str, name: str) -> None:
    conf = yaml.safe_load((REPO / f"egs/{corpus}/ser1/conf/train_{name}.yaml").read_text())
    assert conf["model"] == name
    assert conf["best_model_criterion"][0][0] == "valid"  # dev-only model selection
    params = inspect.signature(ser_model_class(name)).parameters
    unknown = set(conf["model_conf"]) - set(params)
    assert not unknown, unknown
    ssl = conf["model_conf"].get("ssl_conf")
    if ssl is not None:
        assert not set(ssl) - set(inspect.signature(SSLFrontend).parameters)


@pytest.mark.parametrize("name", MODELS)
def test_mini_emo_config_builds(name: str, ent_dir) -> None:
    conf = yaml.safe_load((REPO / f"egs/mini_emo/ser1/conf/train_{name}.yaml").read_text())
    model_conf = dict(conf["model_conf"], ent_dir=str(ent_dir))
    assert conf["model_conf"]["ent_dir"] == "../ent1/exp/ent_fbank_pitch_char_mix"
    # the tiny encoder has 3 blocks, the recipe's 4
    if "layers" in model_conf:
        model_conf["layers"] = [i for i in model_conf["layers"] if i <= 3]
    if model_conf.get("acoustic_layer", 0) > 3:
        model_conf["acoustic_layer"] = 3
    model_conf["checkpoint"] = "valid.loss.ave.pth"
    model = ser_model_class(name)(emotions=EMOTIONS, **model_conf)
    assert model.num_classes == 4
