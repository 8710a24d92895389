"""Detection metrics: VOC AP worked by hand (SAMPLE, INTEGRATE), difficult objects, duplicates, classes without
ground truth; COCO AP through pycocotools and its exact relationship to our curves; the confusion matrix; the
precision-recall browser; hypothesis properties of AP."""
import base64
import contextlib
import io
import logging
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from matplotlib.figure import Figure
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tao_nb.metrics import (CocoAccumulator, ConfusionMatrix, DetectionMatcher, EvaluationResult, PRCurveBrowser,
                            average_precision, plot_confusion_matrix, plot_pr_curves, show_pr_curves)

NAMES = ["car", "person"]


def hand_case(acc):
    """One image, five cars (D difficult, E missed): predictions on A (TP), nowhere (FP), D (ignored), B (TP), A
    again (FP), C (TP), and a person on nowhere (person has no ground truth)."""
    A, B, C, E, D, nowhere = [0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10], [80, 0, 90, 10], [0, 50, 10, 60]
    acc.add([A, nowhere, D, B, [1, 0, 11, 10], C, nowhere], [1, 1, 1, 1, 1, 1, 2], [.9, .8, .75, .7, .6, .5, .4],
            [A, B, C, E, D], [1, 1, 1, 1, 1], [False, False, False, False, True])
    return acc


def random_images(seed, n=40, num_classes=3, scale=1.0):
    """Random ground truth and noisy predictions (shifted copies of the objects, some relabelled, strays)."""
    rng, out = np.random.default_rng(seed), []
    for _ in range(n):
        g = int(rng.integers(0, 6))
        xy = rng.uniform(0, 0.8, (g, 2))
        gb, gc = np.concatenate([xy, xy + rng.uniform(0.05, 0.2, (g, 2))], 1), rng.integers(1, num_classes + 1, g)
        src = rng.integers(0, max(g, 1), int(rng.integers(0, 2 * g + 1)) if g else 0)
        k = int(rng.integers(0, 3))
        stray = rng.uniform(0, 0.8, (k, 2))
        pb = np.concatenate([gb[src] + rng.normal(0, 0.015, (len(src), 4)), np.concatenate([stray, stray + 0.1], 1)])
        pc = np.concatenate([np.where(rng.random(len(src)) < 0.8, gc[src], rng.integers(1, num_classes + 1, len(src))),
                             rng.integers(1, num_classes + 1, k)])
        out.append((pb * scale, pc, rng.random(len(pb)), gb * scale, gc))
    return out


def feed(acc, images):
    for im in images: acc.add(*im)
    return acc


# --- VOC, worked by hand ---

def test_hand_case_decisions():
    m = hand_case(DetectionMatcher(2))
    assert m.hits == {1: [1, 0, 1, 0, 1], 2: [0]}  # D ignored, the duplicate on A a FP
    assert m.positives.tolist() == [0, 4, 0]  # D is difficult: 4 positives


def test_hand_case_sample(caplog):
    # recall 1/4 1/4 2/4 2/4 3/4, precision 1 1/2 2/3 1/2 3/5: the best precision at recall >= t is 1 for t = 0, .1,
    # .2, 2/3 for .3, .4, .5, 3/5 for .6, .7, 0 for .8, .9, 1: (3 + 3*2/3 + 2*3/5) / 11 = 6.2/11
    with caplog.at_level(logging.WARNING, "tao_nb.metrics"):
        r = hand_case(DetectionMatcher(2)).result(NAMES, "SAMPLE")
    assert r.ap["car"] == pytest.approx(6.2 / 11, abs=1e-12)
    assert r.ap["person"] == 0.0 and "class person has no ground truth" in caplog.text
    assert r.mean_ap == pytest.approx(6.2 / 22, abs=1e-12)  # a class without ground truth counts as 0 (TAO)


def test_hand_case_integrate():
    # envelope 1 on (0, 1/4], 2/3 on (1/4, 1/2], 3/5 on (1/2, 3/4], 0 above: 1/4 + 1/4*2/3 + 1/4*3/5 = 17/30
    r = hand_case(DetectionMatcher(2)).result(NAMES, "INTEGRATE")
    assert r.ap["car"] == pytest.approx(17 / 30, abs=1e-12)
    assert r.mean_ap == pytest.approx(17 / 60, abs=1e-12)
    rec, prec = r.curves["car"]
    np.testing.assert_allclose(rec, [.25, .25, .5, .5, .75])
    np.testing.assert_allclose(prec, [1, .5, 2 / 3, .5, .6])
    # 101-point: 1 for recall .00 .. .25 (26 points), 2/3 for .26 .. .50 (25), 3/5 for .51 .. .75 (25), then 0
    assert average_precision(rec, prec, "COCO101") == pytest.approx((26 + 25 * 2 / 3 + 25 * 3 / 5) / 101, abs=1e-12)


def test_difficult_without_prediction_changes_nothing():
    box = [[0, 0, 10, 10]]
    plain, hard = DetectionMatcher(1), DetectionMatcher(1)
    plain.add(box, [1], [.9], box, [1])
    hard.add(box, [1], [.9], box + [[50, 50, 60, 60]], [1, 1], [False, True])  # a difficult object nobody found
    assert plain.result(["car"], "INTEGRATE").ap == hard.result(["car"], "INTEGRATE").ap == {"car": 1.0}


def test_duplicates_are_false_positives():
    m = DetectionMatcher(1)
    m.add([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [1, 1, 1], [.9, .8, .7], [[0, 0, 10, 10]], [1])
    assert m.hits == {1: [1, 0, 0]}
    r = m.result(["car"], "INTEGRATE")
    assert r.ap["car"] == 1.0  # full recall at precision 1 first: the later duplicates lower no envelope point
    np.testing.assert_allclose(r.curves["car"][1], [1, 1 / 2, 1 / 3])


def test_classes_without_ground_truth_or_predictions():
    m = DetectionMatcher(3)
    m.add([[0, 0, 10, 10]], [1], [.9], [[0, 0, 10, 10]], [1])
    m.add([[0, 0, 10, 10]], [2], [.9], np.zeros((0, 4)), [])  # class 2: a prediction, no ground truth
    for mode in ("SAMPLE", "INTEGRATE"):  # class 3: neither
        r = m.result(["a", "b", "c"], mode)
        assert r.ap == {"a": 1.0, "b": 0.0, "c": 0.0} and r.mean_ap == pytest.approx(1 / 3)


def test_sample_recall_in_float64_like_tao():
    # ten cars, three found first, then FPs: recall stops at 3/10 = 0.3 (float64), under linspace(0, 1, 11)[3] =
    # 0.30000000000000004, so SAMPLE reads 1 at t = 0, .1, .2 only: 3/11 (in float32, 0.3 rounds up and gave 4/11)
    m = DetectionMatcher(1)
    boxes = np.array([[i * 20, 0, i * 20 + 10, 10] for i in range(10)], np.float32)
    m.add(np.concatenate([boxes[:3], boxes[:3] + 200]), [1] * 6, [.9, .8, .7, .6, .5, .4], boxes, [1] * 10)
    assert m.result(["car"], "SAMPLE").ap["car"] == pytest.approx(3 / 11, abs=1e-12)
    assert m.result(["car"], "SAMPLE").curves["car"][0].dtype == np.float64


def test_average_precision_modes():
    rec, prec = np.array([0.5, 1.0]), np.array([1.0, 0.5])
    assert average_precision(rec, prec, "INTEGRATE") == pytest.approx(0.75)
    assert average_precision(rec, prec, "SAMPLE") == pytest.approx(8.5 / 11)
    assert average_precision(rec, prec, "COCO101") == pytest.approx(76 / 101)
    with pytest.raises(ValueError, match="SAMPLE, INTEGRATE or COCO101"):
        average_precision(rec, prec, "11point")


def test_callers_get_what_they_got():
    r = EvaluationResult({"car": 0.25, "person": 1.0}, 0.625, {}, "INTEGRATE", 0.5)  # positional, as before
    assert r.coco is None
    assert r.table() == ("               class  AP (INTEGRATE, IoU 0.5)\n                 car: 0.2500\n"
                         "              person: 1.0000\n                 mAP: 0.6250")
    m = DetectionMatcher(2, 0.5)
    assert m.coco_data is None and m.result(NAMES).coco is None


# --- COCO ---

def test_coco_iou_thresholds():
    acc = CocoAccumulator(1)
    acc.add([[0, 0, 10, 10], [20, 0, 30, 8.2]], [1, 1], [.9, .8], [[0, 0, 10, 10], [20, 0, 30, 10]], [1, 1])
    c = acc.result(["car"])
    # IoU .82: both TP at .5 .. .8; at .85 .. .95 the second is a FP after a TP: 1 up to recall .5 (51 of 101 points)
    assert (c.ap50, c.ap75) == (1.0, 1.0)
    assert c.ap == pytest.approx((7 + 3 * 51 / 101) / 10, abs=1e-12)


def test_coco_hand_case_and_quiet(capsys):
    m = hand_case(DetectionMatcher(2, coco=True))
    r = m.result(NAMES, "INTEGRATE")
    assert capsys.readouterr().out == ""  # pycocotools' prints silenced
    assert math.isnan(r.coco.class_ap["person"]) and math.isnan(r.coco.class_ap50["person"])
    assert r.coco.ap50 == r.coco.class_ap50["car"] == pytest.approx(average_precision(*r.curves["car"], "COCO101"), abs=1e-12)
    assert r.coco.ap == pytest.approx(r.coco.ap50)  # every match is exact: the same decisions at every IoU
    table = r.table()
    assert "AP@[.5:.95]" in table and "n/a" in table and "COCO AP75" in table
    assert r.coco == hand_case(CocoAccumulator(2)).result(NAMES)


def test_coco_difficult_is_crowd():
    # two predictions on a difficult object, scored above the one on the regular object: TAO ignores the first and
    # counts the second as a FP; COCO (iscrowd) ignores both. A small prediction inside the difficult box
    # (IoU .25, but all its area inside) is a FP for TAO, ignored by COCO.
    A, D = [0, 0, 10, 10], [50, 0, 70, 20]
    for extra, voc_ap in (([], 1 / 2), ([[55, 5, 65, 15]], 1 / 3)):
        preds = [D, D, *extra, A]
        m = DetectionMatcher(1, coco=True)
        m.add(preds, [1] * len(preds), np.linspace(.9, .6, len(preds)), [A, D], [1, 1], [False, True])
        r = m.result(["car"], "INTEGRATE")
        assert r.ap["car"] == pytest.approx(voc_ap)  # TAO: recall 1 reached at precision 1/2 (1/3 with the small one)
        assert r.coco.ap50 == pytest.approx(1.0) and r.coco.ap == pytest.approx(1.0)  # COCO ignores all three


def test_coco_empty_and_errors():
    c = CocoAccumulator(2).result(NAMES)
    assert math.isnan(c.ap) and math.isnan(c.ap50) and math.isnan(c.class_ap["car"])
    with pytest.raises(ValueError, match="1 class names for 2 classes"):
        CocoAccumulator(2).result(["car"])


def test_coco_max_dets():
    box = [[0, 0, 10, 10]]
    acc = CocoAccumulator(1, max_dets=1)  # only the best prediction per image and class is kept: the FP at .9
    acc.add([[50, 50, 60, 60], box[0]], [1, 1], [.9, .8], box, [1])
    assert acc.result(["car"]).ap50 == 0.0
    acc.max_dets = 2  # both: the FP, then the TP at precision 1/2
    assert acc.result(["car"]).ap50 == pytest.approx(0.5)


def test_coco_same_as_pycocotools_standard_route():
    """Our in-memory build (one area range, maxDets 100) against COCO json + loadRes + default params + summarize."""
    images = random_images(3, scale=640.0)
    ours = feed(CocoAccumulator(3), images).result(["a", "b", "c"])
    anns = []
    for i, (_, _, _, gb, gc) in enumerate(images, 1):
        for (x1, y1, x2, y2), c in zip(gb, gc):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c), "bbox": [x1, y1, x2 - x1, y2 - y1],
                         "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    gt = COCO()
    gt.dataset = {"images": [{"id": i, "width": 640, "height": 640} for i in range(1, len(images) + 1)],
                  "categories": [{"id": c, "name": n} for c, n in zip((1, 2, 3), "abc")], "annotations": anns}
    dets = [{"image_id": i, "category_id": int(c), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(s)}
            for i, im in enumerate(images, 1) for (x1, y1, x2, y2), c, s in zip(im[0], im[1], im[2])]
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate(); ev.accumulate(); ev.summarize()
    np.testing.assert_allclose([ours.ap, ours.ap50, ours.ap75], ev.stats[:3], rtol=0, atol=1e-12)


def integrate_vs_coco(images):
    """Check the relationship of our INTEGRATE curves with COCOeval at IoU .5; return the per-class differences."""
    m = feed(DetectionMatcher(3, coco=True), images)
    r = m.result(["a", "b", "c"], "INTEGRATE")
    q = m.coco_data.cocoeval().eval["precision"][0, :, :, 0, -1]  # (101 recalls, classes) at IoU .5; -1: no gt
    diffs = []
    for k, name in enumerate(r.ap):
        rec, prec = r.curves[name]
        if m.positives[k + 1] == 0:
            assert (q[:, k] == -1).all() and math.isnan(r.coco.class_ap50[name])
            continue
        env = np.concatenate([np.maximum.accumulate(prec[::-1])[::-1], [0.0]])
        np.testing.assert_allclose(env[np.searchsorted(rec, np.linspace(0, 1, 101))], q[:, k], rtol=0, atol=1e-12)
        assert average_precision(rec, prec, "COCO101") == pytest.approx(r.coco.class_ap50[name], abs=1e-12)
        assert q[1:, k].sum() / 100 - 1e-12 <= r.ap[name] <= q[:-1, k].sum() / 100 + 1e-12  # Riemann sums
        diffs.append(r.ap[name] - r.coco.class_ap50[name])
        assert -1 / 101 - 1e-12 <= diffs[-1] <= 1 / 100 + 1e-12
    return diffs


def test_integrate_vs_coco_ap50_fixed_seeds():
    diffs = [d for seed in range(5) for d in integrate_vs_coco(random_images(seed))]
    assert len(diffs) == 15 and max(map(abs, diffs)) < 0.01


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30))
def test_integrate_vs_coco_ap50_random(seed, n):
    integrate_vs_coco(random_images(seed, n))


# --- confusion matrix ---

def test_confusion_hand_case():
    cm = hand_case(ConfusionMatrix(2, score_threshold=0.45))
    assert cm.counts.tolist() == [[0, 1, 0],  # the car stray; the person stray (0.4) under the threshold
                                  [1, 3, 0],  # E missed; A B C cars (D difficult; the duplicate on A in no cell)
                                  [0, 0, 0]]
    cm.add([[0, 0, 10, 10], [0, 0, 10, 10]], [1, 2], [0.9, 0.3], [[0, 0, 10, 10]], [2])  # a person seen as a car
    assert cm.counts[2].tolist() == [0, 1, 0]
    cm.add([[0, 0, 10, 10]], [2], [0.9], np.zeros((0, 4)), [])  # a stray on an empty image
    cm.add(np.zeros((0, 4)), [], [], [[0, 0, 10, 10]], [1])  # an object without predictions
    assert cm.counts.tolist() == [[0, 1, 1], [2, 3, 0], [0, 1, 0]]


def test_confusion_best_scored_prediction_and_shared_predictions():
    cm = ConfusionMatrix(2)
    # the object is covered by a person (.6) and a car (.9): the car, the better scored, decides
    cm.add([[0, 0, 10, 10], [0, 0, 10, 9]], [2, 1], [.6, .9], [[0, 0, 10, 10]], [2])
    assert cm.counts.tolist() == [[0, 0, 0], [0, 0, 0], [0, 1, 0]]
    # one prediction over two overlapping objects (IoU .83 with both) counts for both
    cm2 = ConfusionMatrix(1)
    cm2.add([[0, 0, 10, 10]], [1], [.9], [[0, 0, 10, 9], [0, 1, 10, 10]], [1, 1])
    assert cm2.counts.tolist() == [[0, 0], [0, 2]]


@pytest.mark.parametrize("seed", range(3))
def test_confusion_rows_are_the_positives(seed):
    images = random_images(seed)
    diff = [np.random.default_rng(seed).random(len(im[4])) < 0.2 for im in images]
    cm, m = ConfusionMatrix(3, score_threshold=0.3), DetectionMatcher(3)
    for im, d in zip(images, diff): cm.add(*im, d); m.add(*im, d)
    assert cm.counts[1:].sum(1).tolist() == m.positives[1:].tolist()
    assert cm.counts[0].sum() <= sum(int((im[2] >= 0.3).sum()) for im in images) and cm.counts[0, 0] == 0


def test_confusion_perfect_is_diagonal():
    images = random_images(7)
    cm = ConfusionMatrix(3)
    for _, _, _, gb, gc in images: cm.add(gb, gc, np.ones(len(gc)), gb, gc)
    assert (cm.counts == np.diag(np.diag(cm.counts))).all() and cm.counts[0, 0] == 0
    assert np.diag(cm.counts)[1:].sum() == sum(len(im[4]) for im in images)


def test_plot_confusion_matrix():
    cm = hand_case(ConfusionMatrix(2, score_threshold=0.45))
    fig = Figure()
    plot_confusion_matrix(cm.counts, NAMES, fig.add_subplot())
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["1", "1", "3"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["missed", "car", "person"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["background", "car", "person"]


# --- precision-recall curves ---

def test_pr_browser_by_values():
    r = feed(DetectionMatcher(3), random_images(1)).result(["a", "b", "c"], "INTEGRATE")
    b = PRCurveBrowser(r)
    assert len(b.figure.axes[0].lines) == 3 and b.summary.value == f"mean AP (3 of 3 classes): {r.mean_ap:.4f}"
    first = base64.b64decode(b.output.outputs[0]["data"]["image/png"])
    b.classes.value = ("b",)
    assert [l.get_label() for l in b.figure.axes[0].lines] == [f"b (AP {r.ap['b']:.3f})"]
    assert b.summary.value == f"mean AP (1 of 3 classes): {r.ap['b']:.4f}"
    assert base64.b64decode(b.output.outputs[0]["data"]["image/png"]) != first
    b.classes.value = ()
    assert not b.figure.axes[0].lines and b.summary.value == "no class selected"


def test_show_pr_curves_headless_is_the_static_figure():
    import matplotlib.pyplot as plt
    r = hand_case(DetectionMatcher(2)).result(NAMES)
    fig = show_pr_curves(r)  # pytest runs outside a Jupyter kernel
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "Precision-Recall curve" and len(fig.axes[0].lines) == 2
    assert isinstance(show_pr_curves(r, interactive=True), PRCurveBrowser)
    assert len(plot_pr_curves(r, classes=["car"]).axes[0].lines) == 1
    plt.close("all")


# --- properties ---

C = 3
coord, size = st.floats(0, 0.9), st.floats(0.02, 0.1)
box = st.builds(lambda x, y, w, h: [x, y, x + w, y + h], coord, coord, size, size)


@st.composite
def datasets(draw, difficult=True, perfect=False):
    """Images of (pred boxes, classes, scores, gt boxes, classes, difficult); scores distinct over all images."""
    raw = []
    for _ in range(draw(st.integers(1, 5))):
        gts = draw(st.lists(st.tuples(box, st.integers(1, C), st.booleans() if difficult else st.just(False)), max_size=4))
        if perfect: preds = [(b, c) for b, c, _ in gts]
        else:
            preds = []
            for _ in range(draw(st.integers(0, 6))):
                src = draw(st.integers(-1, len(gts) - 1))
                if src < 0: preds.append((draw(box), draw(st.integers(1, C))))
                else:
                    shift = draw(st.floats(-0.02, 0.02))
                    preds.append(([v + shift for v in gts[src][0]], draw(st.sampled_from([gts[src][1], 1, 2, 3]))))
        raw.append((gts, preds))
    n = sum(len(p) for _, p in raw)
    ranks, out, k = draw(st.permutations(range(n))), [], 0
    for gts, preds in raw:
        scores = [(ranks[k + i] + 1) / (n + 1) for i in range(len(preds))]
        k += len(preds)
        out.append((np.array([b for b, _ in preds], float).reshape(-1, 4), np.array([c for _, c in preds], int),
                    np.array(scores, float), np.array([b for b, _, _ in gts], float).reshape(-1, 4),
                    np.array([c for _, c, _ in gts], int), np.array([d for _, _, d in gts], bool)))
    return out


def evaluate(images, coco=False):
    m = feed(DetectionMatcher(C, coco=coco), images)
    names = [f"c{i}" for i in range(1, C + 1)]
    return m, {mode: m.result(names, mode) for mode in ("SAMPLE", "INTEGRATE", "COCO101")}


PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(datasets())
def test_ap_in_unit_interval(images):
    _, rs = evaluate(images, coco=True)
    for r in rs.values():
        assert all(0.0 <= ap <= 1.0 for ap in r.ap.values()) and 0.0 <= r.mean_ap <= 1.0
    c = rs["SAMPLE"].coco
    for v in [c.ap, c.ap50, c.ap75, *c.class_ap.values(), *c.class_ap50.values()]:
        assert math.isnan(v) or 0.0 <= v <= 1.0


@PROPS
@given(datasets(perfect=True))
def test_perfect_detections_score_one(images):
    m, rs = evaluate(images)
    for r in rs.values():
        assert all(r.ap[f"c{c}"] == pytest.approx(1.0) for c in range(1, C + 1) if m.positives[c])


@PROPS
@given(datasets(difficult=False, perfect=True))
def test_perfect_detections_score_one_for_coco(images):
    m, rs = evaluate(images, coco=True)
    c = rs["INTEGRATE"].coco
    if not m.positives.any(): assert math.isnan(c.ap)
    else: assert [c.ap, c.ap50, c.ap75] == pytest.approx([1.0] * 3)  # 1 up to pycocotools' np.spacing(1)


@PROPS
@given(datasets(), st.data())
def test_an_added_false_positive_never_raises_ap(images, data):
    _, before = evaluate(images)
    i = data.draw(st.integers(0, len(images) - 1))
    low = min([s for im in images for s in im[2]], default=1.0) / 2
    score = data.draw(st.sampled_from([low, data.draw(st.floats(0, 1))]))  # lower-scored than all, or anywhere
    pb, pc, ps, *gt = images[i]
    images = [*images[:i], (np.concatenate([pb, [[2, 2, 2.05, 2.05]]]), np.append(pc, data.draw(st.integers(1, C))),
                            np.append(ps, score), *gt), *images[i + 1:]]  # outside [0, 1]: it matches nothing
    _, after = evaluate(images)
    for mode in before:
        for name, ap in before[mode].ap.items(): assert after[mode].ap[name] <= ap + 1e-12


@PROPS
@given(datasets(), st.randoms(use_true_random=False))
def test_image_order_does_not_change_ap(images, rnd):
    _, before = evaluate(images, coco=True)
    shuffled = list(images)
    rnd.shuffle(shuffled)
    _, after = evaluate(shuffled, coco=True)
    for mode in before:
        assert after[mode].ap == before[mode].ap
    b, a = before["SAMPLE"].coco, after["SAMPLE"].coco
    np.testing.assert_allclose([a.ap, a.ap50, a.ap75], [b.ap, b.ap50, b.ap75], atol=1e-12)
