"""Every backbone of the spec rules' table: built, strides 8 and 16, block ids as the table says, freezable; an SSD
on GoogLeNet and SqueezeNet trains a step."""
import numpy as np
import pytest

from tao_nb.core import import_tensorflow
from tao_nb.models.backbones import build_backbone, freeze
from tao_nb.spec_rules import BACKBONES

import_tensorflow()
import keras  # noqa: E402

CASES = [(arch, n) for arch, info in BACKBONES.items() for n in (info.nlayers or (0,))]


@pytest.mark.parametrize("arch,nlayers", CASES, ids=[f"{a}{n or ''}" for a, n in CASES])
def test_strides_and_blocks_agree_with_the_spec_rules(arch, nlayers):
    inp = keras.Input((96, 128, 3))
    bb = build_backbone(arch, nlayers, inp)
    assert (bb.stride8.shape[1:3], bb.stride16.shape[1:3]) == ((12, 16), (6, 8))
    assert sorted(bb.blocks) == list(BACKBONES[arch].blocks)  # every valid freeze_blocks id, and no other
    names = [n for blk in bb.blocks.values() for n in blk]
    assert len(names) == len(set(names)), "a layer is recorded in two blocks"
    if arch == "darknet":  # its own stride-32 stage, for YOLOv3: the end of block 5
        assert bb.stride32.shape[1:3] == (3, 4) and keras.Model(inp, bb.stride32).layers[-1].name == bb.blocks[5][-1]
    else:
        assert bb.stride32 is None
    model = keras.Model(inp, bb.stride16)  # as SSD uses it: layers past stride 16 (darknet's last stage) left out
    freeze(model, bb.blocks, BACKBONES[arch].blocks)
    frozen = {l.name for l in model.layers if l.weights and not l.trainable}
    assert frozen == {l.name for l in model.layers if l.weights and l.name in names}
    if arch == "googlenet":  # inception 5a and 5b are not among the freezable blocks
        assert {"inception_5b_1x1_conv", "inception_5a_3x3_conv"} <= {l.name for l in model.layers if l.trainable}


@pytest.mark.parametrize("arch", ["googlenet", "squeezenet"])
def test_ssd_on_the_new_backbones_trains_a_step(arch):
    from tao_nb.models.anchors import AnchorSettings
    from tao_nb.models.ssd import build_ssd
    from tao_nb.models.ssd_targets import ssd_targets
    from tao_nb.models.detectors import SSD
    from tao_nb.train import DetectorTrainer
    keras.utils.set_random_seed(0)
    settings = AnchorSettings((0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05), ((1.0, 2.0, 0.5),) * 6)
    net = build_ssd((96, 128, 3), ["car", "person"], settings, arch, 0, freeze_blocks=[0])
    assert net.model.output.shape[1] == len(net.anchors) == 4 * (12 * 16 + 6 * 8 + 3 * 4 + 2 * 2 + 1 + 1)
    x = np.random.default_rng(0).normal(size=(2, 96, 128, 3)).astype(np.float32)
    y = keras.ops.stack([ssd_targets(np.array([[0.1, 0.2, 0.5, 0.6]], np.float32), np.array([1], np.int32),
                                     net.anchors, net.variances)] * 2)
    trainer = DetectorTrainer(net.model, SSD.loss(net), reg_kind="L1", reg_weight=1e-5)
    trainer.compile(optimizer=keras.optimizers.SGD(1e-3))
    logs = trainer.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["reg_loss"] > 0


@pytest.mark.parametrize("nlayers", [19, 53])
def test_ssd_on_darknet_leaves_the_stride32_stage_out(nlayers):
    "SSD takes darknet's strides 8 and 16 only: none of block 5's layers is in the model, as before `stride32`."
    from tao_nb.models.anchors import AnchorSettings
    from tao_nb.models.ssd import build_ssd
    settings = AnchorSettings((0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05), ((1.0, 2.0, 0.5),) * 6)
    net = build_ssd((64, 64, 3), ["car"], settings, "darknet", nlayers, freeze_blocks=[5])
    names = {l.name for l in net.model.layers}
    assert set(net.blocks[4]) <= names and not set(net.blocks[5]) & names
    assert all(l.trainable for l in net.model.layers)
    assert net.model.get_layer("ssd_extra_1_1_conv").input.shape[1:] == (4, 4, 512)  # stage 4's output


def test_darknet_force_relu():
    "force_relu (TAO's DarkNet option) puts ReLU for every leaky ReLU; the layers and weights are otherwise alike."
    leaky, relu = (build_backbone("darknet", 19, keras.Input((32, 32, 3)), force_relu=f) for f in (False, True))
    a, b = (keras.Model(bb.inputs, bb.stride32) for bb in (leaky, relu))
    acts = lambda m, t: sum(type(l) is t for l in m.layers)
    assert acts(a, keras.layers.LeakyReLU) == acts(b, keras.layers.ReLU) > 0
    assert acts(b, keras.layers.LeakyReLU) == 0 and acts(a, keras.layers.ReLU) == 0
    assert [w.shape for w in a.weights] == [w.shape for w in b.weights]
