"""Property tests of the YOLOv3 model side: anchors, k-means, targets (against an independent index-arithmetic
reference), encode/decode, the loss on edge cases, decoding + NMS, and (slow) every backbone."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tao_nb.boxes import cxcywh_to_xyxy, iou_matrix, xyxy_to_cxcywh
from tao_nb.core import TaoNbError
from tao_nb.models.yolo_anchors import STRIDES, YoloAnchors, kmeans_anchors, shape_iou, yolo_grid
from tao_nb.models.yolo_targets import decode_yolo, encode_yolo, yolo_loss, yolo_targets

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIZES = [(128, 128), (96, 160), (128, 256), (64, 64)]


@st.composite
def scenes(draw, max_boxes=6):
    "An input size, anchors (9 random shapes in pixels), boxes (normalised xyxy) and class ids."
    h, w = draw(st.sampled_from(SIZES))
    shapes = draw(st.lists(st.tuples(st.floats(4, 200), st.floats(4, 200)), min_size=9, max_size=9))
    m = draw(st.integers(0, max_boxes))
    cx = draw(st.lists(st.floats(0, 1), min_size=m, max_size=m))
    cy = draw(st.lists(st.floats(0, 1), min_size=m, max_size=m))
    bw = draw(st.lists(st.floats(0.01, 1), min_size=m, max_size=m))
    bh = draw(st.lists(st.floats(0.01, 1), min_size=m, max_size=m))
    boxes = np.array(cxcywh_to_xyxy(np.stack([cx, cy, bw, bh], -1).reshape(-1, 4)), np.float32)
    classes = np.array(draw(st.lists(st.integers(1, 3), min_size=m, max_size=m)), np.int32)
    thr = draw(st.sampled_from([0.3, 0.5, 0.7, 0.9]))
    return (h, w), YoloAnchors.from_shapes(shapes), boxes, classes, thr


def reference_targets(size, anchors, boxes, classes, n_classes, thr):
    "An independent implementation by index arithmetic: (positive index -> box index), neutral mask."
    h, w = size
    shapes = (anchors.shapes() / [w, h]).astype(np.float32)  # float32 as the network: near-ties break alike
    g = xyxy_to_cxcywh(boxes)
    owners = {}
    offsets = np.cumsum([0] + [3 * (h // s) * (w // s) for s in STRIDES])
    for i, (cx, cy, bw, bh) in enumerate(g):
        inter = np.minimum(bw, shapes[:, 0]) * np.minimum(bh, shapes[:, 1])
        best = int(np.argmax(inter / np.maximum(bw * bh + shapes[:, 0] * shapes[:, 1] - inter, np.float32(1e-12))))
        scale, k = divmod(best, 3)
        rows, cols = h // STRIDES[scale], w // STRIDES[scale]
        col = min(int(np.floor(min(max(cx, 0), 1 - 1e-6) * cols)), cols - 1)
        row = min(int(np.floor(min(max(cy, 0), 1 - 1e-6) * rows)), rows - 1)
        owners[int(offsets[scale] + (row * cols + col) * 3 + k)] = i  # the later box wins
    grid = yolo_grid(size, anchors)
    iou = iou_matrix(boxes, cxcywh_to_xyxy(grid.priors)) if len(boxes) else np.zeros((1, len(grid)))
    neutral = iou.max(0) > thr
    neutral[list(owners)] = False
    return owners, neutral


@FAST
@given(scenes())
def test_targets_match_reference(scene):
    size, anchors, boxes, classes, thr = scene
    grid = yolo_grid(size, anchors)
    t = yolo_targets(boxes, classes, grid, 3, thr).numpy()
    owners, neutral = reference_targets(size, anchors, boxes, classes, 3, thr)
    assert sorted(np.flatnonzero(t[:, 4] == 1).tolist()) == sorted(owners)
    np.testing.assert_array_equal(t[:, 4] == -1, neutral)
    for a, i in owners.items():
        np.testing.assert_allclose(decode_yolo(t[a, :4], grid.priors[a], grid.steps[a]).numpy(),
                                   xyxy_to_cxcywh(boxes[i]), rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(t[a, 5:], np.eye(3)[classes[i] - 1])
        assert -1e-4 <= t[a, 0] <= 1 + 1e-4 and -1e-4 <= t[a, 1] <= 1 + 1e-4  # the centre is in the prior's cell
    assert not t[t[:, 4] != 1][:, [0, 1, 2, 3, 5, 6, 7]].any()


@pytest.mark.slow
@SLOW
@given(scenes(max_boxes=20))
def test_targets_match_reference_many(scene):
    test_targets_match_reference.hypothesis.inner_test(scene)


@FAST
@given(st.lists(st.floats(-0.2, 1.2), min_size=2, max_size=2), st.lists(st.floats(1e-3, 3), min_size=2, max_size=2),
       st.integers(0, 1007))
def test_encode_decode_roundtrip(centre, size, prior):
    grid = yolo_grid((128, 128), YoloAnchors(((80, 60),) * 3, ((40, 30),) * 3, ((10, 12), (16, 30), (24, 18))))
    box = np.array([*centre, *size], np.float32)
    enc = encode_yolo(box, grid.priors[prior], grid.steps[prior])
    np.testing.assert_allclose(decode_yolo(enc, grid.priors[prior], grid.steps[prior]).numpy(), box, rtol=1e-5, atol=1e-5)


def planted_clusters(seed):
    "9 shapes, each area about 3x the previous, random aspect ratios; 30 boxes within 5% of each."
    rng = np.random.default_rng(seed)
    areas = 100 * 3.0 ** np.arange(9)
    aspect = rng.uniform(0.5, 2.0, 9)
    planted = np.stack([np.sqrt(areas * aspect), np.sqrt(areas / aspect)], -1)
    boxes = np.concatenate([c * rng.uniform(0.95, 1.05, (30, 2)) for c in planted])
    return planted, rng.permutation(boxes)


@pytest.mark.parametrize("seed", range(3))
def test_kmeans_recovers_planted(seed):
    planted, boxes = planted_clusters(seed)
    found = kmeans_anchors(boxes, 9, seed=seed)
    np.testing.assert_array_less(np.abs(found / planted - 1), 0.06)
    a = YoloAnchors.from_shapes(found)
    np.testing.assert_allclose(np.array(a.big), found[6:]); np.testing.assert_allclose(np.array(a.small), found[:3])


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 40))
def test_kmeans_recovers_planted_many(seed):
    test_kmeans_recovers_planted(seed)


def test_kmeans_bad_input():
    with pytest.raises(TaoNbError, match="distinct shapes"): kmeans_anchors(np.ones((20, 2)), 3)
    with pytest.raises(TaoNbError, match="box 1 has the shape"): kmeans_anchors([[1, 2], [np.nan, 2], [3, 4]], 2)
    with pytest.raises(TaoNbError, match="cannot fill the three outputs"): YoloAnchors.from_shapes([[1, 2], [3, 4]])
    np.testing.assert_allclose(shape_iou([[2, 4]], [[4, 2]]), [[4 / 12]])


def test_loss_edge_cases():
    grid = yolo_grid((64, 64), YoloAnchors(((40, 40),) * 3, ((20, 20),) * 3, ((8, 8),) * 3))
    rng = np.random.default_rng(0)
    pred = rng.normal(0, 1, (1, len(grid), 6)).astype(np.float32)
    # A box of zero width (its size target is -inf): the loss limits the log ratio and stays finite.
    t = yolo_targets(np.array([[0.5, 0.5, 0.5, 0.7]], np.float32), [1], grid, 1)[None]
    out = yolo_loss(t, pred, grid.priors)
    assert all(np.isfinite(float(v)) for v in out.values()) and float(out["positives"]) == 1
    # No objects anywhere: only the negative objectness term.
    out = yolo_loss(np.zeros((1, len(grid), 6), np.float32), pred, grid.priors, neg_obj_weight=2.0)
    sig = 1 / (1 + np.exp(-pred[0, :, 4]))
    np.testing.assert_allclose(float(out["loss"]), 2.0 * np.mean(-np.log(1 - sig)), rtol=1e-5)


@st.composite
def separated_boxes(draw):
    "1 to 4 boxes pairwise overlapping by less than 0.3 IoU, with classes."
    m = draw(st.integers(1, 4))
    boxes = []
    for _ in range(m):
        x1, y1 = draw(st.floats(0, 0.8)), draw(st.floats(0, 0.8))
        b = [x1, y1, x1 + draw(st.floats(0.05, 1 - x1)), y1 + draw(st.floats(0.05, 1 - y1))]
        if not boxes or iou_matrix(np.array([b]), np.array(boxes)).max() < 0.3: boxes.append(b)
    return np.array(boxes, np.float32), np.array(draw(st.lists(st.integers(1, 3), min_size=len(boxes), max_size=len(boxes))))


@FAST
@given(separated_boxes())
def test_decode_nms_gives_planted_boxes_back(scene):
    from tao_nb.models.yolov3 import YOLOv3DetectionHead
    boxes, classes = scene
    anchors = YoloAnchors(((80, 60), (100, 110), (120, 70)), ((40, 30), (50, 50), (30, 60)), ((10, 12), (16, 30), (24, 18)))
    head = YOLOv3DetectionHead((128, 128), anchors, confidence_threshold=0.5, iou_threshold=0.5, top_k=8)
    t = yolo_targets(boxes, classes, head.grid, 3).numpy()
    pos = t[:, 4] == 1
    x = np.clip(t[:, :2], 1e-6, 1 - 1e-6)
    raw = np.concatenate([np.log(x / (1 - x)), t[:, 2:4], np.where(t[:, 4:] == 1, 9.0, -9.0)], -1)
    det = head(raw[None].astype(np.float32)).numpy()[0]
    det = det[det[:, 0] > 0]
    # Expected: one detection per assigned prior (boxes sharing a prior leave the later one), at its box and class.
    expected = [np.array([np.argmax(t[a, 5:]) + 1, *cxcywh_to_xyxy(decode_yolo(t[a, :4], head.grid.priors[a],
                                                                             head.grid.steps[a]).numpy())])
                for a in np.flatnonzero(pos)]
    got = [d[[0, 2, 3, 4, 5]] for d in det]
    assert len(got) == len(expected) >= 1
    for e in expected:  # a one-to-one match
        i = next(i for i, g in enumerate(got) if np.allclose(g, e, atol=1e-5))
        got.pop(i)
    for d in det:  # and each is one of the planted boxes, with its class
        assert any(np.allclose(d[2:], b, atol=1e-5) and d[0] == c for b, c in zip(boxes, classes)), (d, boxes)


def test_darknet_stride32_stage_is_used_and_freezable():
    "YOLOv3 on darknet takes darknet's own stride-32 stage (block 5), so freeze_blocks 5 freezes it; no expand conv."
    import keras
    from tao_nb.models.yolov3 import build_yolov3
    anchors = YoloAnchors(((80, 60),) * 3, ((40, 30),) * 3, ((10, 12),) * 3)
    net = build_yolov3((64, 96, 3), ["a"], anchors, "darknet", 19, 0, freeze_blocks=[5], force_relu=True)
    names = {l.name for l in net.model.layers}
    assert set(net.blocks[5]) <= names and "yolo_expand_conv1_conv" not in names
    assert {l.name for l in net.model.layers if not l.trainable} == set(net.blocks[5])
    assert net.model.get_layer("yolo_conv1_1_conv").input.name == net.model.get_layer(net.blocks[5][-1]).output.name
    assert not any(isinstance(l, keras.layers.LeakyReLU) for l in net.model.layers)  # backbone too, as TAO's DarkNet
    assert net.model.get_layer("conv_big_object").output.shape[1:3] == (2, 3)


def greedy_nms(boxes, scores, thr, iou_thr, top_k):
    "Reference per-class NMS in NumPy: greedy by score within each class, then the top_k best over all classes."
    rows = []
    for c in range(scores.shape[1]):
        order = [i for i in np.argsort(-scores[:, c], kind="stable") if scores[i, c] > thr]
        kept = []
        for i in order:
            if all(iou_matrix(boxes[i:i + 1], boxes[j:j + 1])[0, 0] <= iou_thr for j in kept): kept.append(i)
        rows += [[c + 1, scores[i, c], *boxes[i]] for i in kept[:top_k]]
    rows = sorted(rows, key=lambda r: -r[1])[:top_k]
    return np.array(rows + [[0] * 6] * (top_k - len(rows)), np.float32)


@st.composite
def nms_scenes(draw):
    "Crowded boxes (normalised xyxy; many overlap), distinct scores for 1-3 classes, thresholds away from IoUs and scores."
    n, c = draw(st.integers(1, 12)), draw(st.integers(1, 3))
    xy = np.array(draw(st.lists(st.floats(0, 0.3), min_size=2 * n, max_size=2 * n)), np.float32).reshape(n, 2)
    wh = np.array(draw(st.lists(st.floats(0.1, 0.4), min_size=2 * n, max_size=2 * n)), np.float32).reshape(n, 2)
    boxes = np.concatenate([xy, xy + wh], -1)
    scores = np.array(draw(st.permutations(range(1, n * c + 1))), np.float32).reshape(n, c) / (n * c + 1)
    iou_thr, thr = draw(st.sampled_from([0.3, 0.5, 0.7])), draw(st.sampled_from([0.05, 0.31, 0.62]))
    assume(np.abs(iou_matrix(boxes, boxes) - iou_thr).min() > 1e-3 and np.abs(scores - thr).min() > 1e-3)
    return boxes, scores, thr, iou_thr, draw(st.integers(1, 8))


@FAST
@given(nms_scenes())
def test_nms_detections_matches_greedy_reference(scene):
    "The per-class NMS that SSD's and YOLOv3's detection heads share, against a NumPy reference."
    from tao_nb.models.ssd import nms_detections
    boxes, scores, thr, iou_thr, top_k = scene
    got = nms_detections(boxes[None], scores[None], thr, iou_thr, top_k).numpy()[0]
    np.testing.assert_allclose(got, greedy_nms(boxes, scores, thr, iou_thr, top_k), atol=1e-6)


@pytest.mark.slow
@SLOW
@given(nms_scenes())
def test_nms_detections_matches_greedy_reference_many(scene):
    test_nms_detections_matches_greedy_reference.hypothesis.inner_test(scene)


@pytest.mark.slow
@pytest.mark.parametrize("arch,nlayers", [("resnet", 18), ("resnet", 50), ("vgg", 16), ("googlenet", 0),
                                          ("mobilenet_v1", 0), ("mobilenet_v2", 0), ("squeezenet", 0), ("darknet", 53)])
def test_every_backbone_builds(arch, nlayers):
    from tao_nb.models.detectors import YOLOV3
    from tao_nb.models.yolov3 import build_yolov3
    anchors = YoloAnchors(((80, 60),) * 3, ((40, 30),) * 2, ((10, 12),))
    net = build_yolov3((128, 96, 3), ["a", "b"], anchors, arch, nlayers, 1)
    assert net.model.output.shape[1:] == (len(net.grid), 7) and len(net.grid) == 3 * 4 * 3 + 2 * 8 * 6 + 16 * 12
    out = YOLOV3.inference_model(net, 0.0, 0.5, 5).predict(np.zeros((1, 128, 96, 3), np.float32), verbose=0)
    assert out.shape == (1, 5, 6) and np.all(np.isfinite(out))


@pytest.mark.slow
def test_training_box_sizes_tfrecords_match_kitti_folders(sample, seed_spec):
    "The k-means input read from TFRecords equals the one read from the KITTI folders they were converted from."
    from tao_nb.data.sample import sample_class_mapping
    from tao_nb.models.yolo_anchors import kmeans_spec_anchors, training_box_sizes
    from tao_nb.spec import load_spec, spec_from_text
    ssd_path = sample("yolo_kmeans.txt")
    records = load_spec(ssd_path).dataset_config.data_sources[0].tfrecords_path
    train = ssd_path.parent / "data" / "training"
    head = seed_spec("yolov3_experiment.txt").read_text().split("\ndataset_config {")[0]
    head = head.replace("output_image_width: 1248", "output_image_width: 320").replace("crop_right: 1248", "crop_right: 0")
    mapping = "".join(f'  target_class_mapping {{ key: "{k}" value: "{v}" }}\n' for k, v in sample_class_mapping().items())
    specs = [spec_from_text(head + f"\ndataset_config {{\n  data_sources {{ {src} }}\n  image_extension: \"png\"\n"
                                   f"  include_difficult_in_training: true\n{mapping}}}", "yolo_v3")
             for src in (f'tfrecords_path: "{records}"',
                         f'image_directory_path: "{train / "image_2"}" label_directory_path: "{train / "label_2"}"')]
    a, b = (training_box_sizes(s) for s in specs)
    assert len(a) > 9
    np.testing.assert_allclose(np.sort(a, 0), np.sort(b, 0), atol=1e-3)
    np.testing.assert_allclose(kmeans_spec_anchors(specs[0]).shapes(), kmeans_spec_anchors(specs[1]).shapes(), atol=0.05)
