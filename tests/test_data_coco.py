"""COCO reader: a corpus of malformed files (each a clear CocoError or a listed skip), fuzzed annotation entries,
round trips through the writer, and a file of COCO-like size."""
import copy
import json
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from tao_nb.core import TaoNbError
from tao_nb.data.coco import CocoError, CocoImage, read_coco, write_coco
from tao_nb.data.kitti import ImageAnnotations


def base():
    return {"images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 24},
                       {"id": 2, "file_name": "sub/b.png", "width": 32, "height": 24}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 5], "iscrowd": 0},
                            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0.5, 0.25, 4, 4]}],
            "categories": [{"id": 1, "name": "Traffic Light"}, {"id": 2, "name": "person"}]}


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    for name in ("a.png", "sub/b.png"):
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 24)).save(d / name)
    return d


def put(tmp_path, doc, name="ann.json"):
    path = tmp_path / name
    if isinstance(doc, bytes): path.write_bytes(doc)
    else: path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def edit(fn):
    """A malformed variant of the base document, made by `fn` on a copy."""
    def make():
        d = copy.deepcopy(base()); fn(d); return d
    return make


def setitem(path, value):
    def fn(d):
        *head, last = path
        for k in head: d = d[k]
        d[last] = value
    return edit(fn)


def delitem(path):
    def fn(d):
        *head, last = path
        for k in head: d = d[k]
        del d[last]
    return edit(fn)


IMG, ANN, CAT = ("images", 0), ("annotations", 0), ("categories", 0)
MALFORMED = {
    "not json": (lambda: "{'images': []}", "not valid JSON (line 1, column 2"),
    "empty file": (lambda: "", "not valid JSON"),
    "not utf-8": (lambda: b"\xff\xfe{", "not UTF-8 text"),
    "nested too deeply": (lambda: "[" * 200_000 + "]" * 200_000, "nested too deeply"),
    "number too long": (lambda: '{"images": [' + "1" * 5000 + "]}", "not valid JSON (Exceeds the limit"),
    "top level list": (lambda: [base()], "the file holds a JSON array; a COCO file is an object"),
    "top level null": (lambda: "null", "the file holds a JSON null"),
    "top level string": (lambda: '"coco"', "the file holds a JSON string"),
    "no images": (delitem(["images"]), "no 'images'; a COCO detection file is"),
    "no annotations": (delitem(["annotations"]), "no 'annotations'"),
    "no categories": (delitem(["categories"]), "no 'categories'"),
    "images an object": (setitem(["images"], {"1": {}}), "'images' is a JSON object, not an array"),
    "annotations null": (setitem(["annotations"], None), "'annotations' is a JSON null, not an array"),
    "image a string": (setitem([*IMG], "a.png"), "images[0] is a JSON string, not an object"),
    "image without id": (delitem([*IMG, "id"]), "images[0]: no 'id'"),
    "image id a string": (setitem([*IMG, "id"], "1"), "images[0]: id is '1'; ids are integers"),
    "image id a boolean": (setitem([*IMG, "id"], True), "images[0]: id is True; ids are integers"),
    "image id a float": (setitem([*IMG, "id"], 1.0), "images[0]: id is 1.0; ids are integers"),
    "duplicate image id": (setitem(["images", 1, "id"], 1), "images[1] (id 1): id 1 is also the id of images[0]"),
    "no file_name": (delitem([*IMG, "file_name"]), "images[0] (id 1): no 'file_name'"),
    "file_name a number": (setitem([*IMG, "file_name"], 7), "file_name is 7; it is the image's path relative"),
    "file_name empty": (setitem([*IMG, "file_name"], ""), "file_name is ''"),
    "file_name absolute": (setitem([*IMG, "file_name"], "/etc/passwd"), "file_name '/etc/passwd' is an absolute path"),
    "file_name drive": (setitem([*IMG, "file_name"], "D:/x.png"), "is an absolute path"),
    "file_name unc": (setitem([*IMG, "file_name"], "\\\\server\\x.png"), "is an absolute path"),
    "file_name traversal": (setitem([*IMG, "file_name"], "../secret.png"), "climbs out of the image folder"),
    "file_name deep traversal": (setitem([*IMG, "file_name"], "sub/../../x.png"), "climbs out of the image folder"),
    "file_name backslash traversal": (setitem([*IMG, "file_name"], "sub\\..\\..\\x.png"), "climbs out"),
    "file_name nul": (setitem([*IMG, "file_name"], "a\x00.png"), "contains a NUL character"),
    "file_name dot": (setitem([*IMG, "file_name"], "."), "names no file"),
    "file_name long": (setitem([*IMG, "file_name"], "../" + "a" * 5000), "'../aaaaaaaaaaa"),
    "no width": (delitem([*IMG, "width"]), "images[0] (id 1): no 'width'"),
    "width zero": (setitem([*IMG, "width"], 0), "width is 0; the image size is a whole number of pixels > 0"),
    "height negative": (setitem([*IMG, "height"], -5), "height is -5"),
    "width a string": (setitem([*IMG, "width"], "32"), "width is '32'"),
    "width fractional": (setitem([*IMG, "width"], 31.5), "width is 31.5"),
    "width nan": (setitem([*IMG, "width"], float("nan")), "width is nan"),
    "width null": (setitem([*IMG, "width"], None), "width is None"),
    "category id 0": (setitem([*CAT, "id"], 0), "category ids start at 1 (0 is the background class)"),
    "category id negative": (setitem([*CAT, "id"], -2), "category ids start at 1"),
    "duplicate category id": (setitem(["categories", 1, "id"], 1), "categories[1] (id 1): id 1 is also the id of categories[0]"),
    "category name empty": (setitem([*CAT, "name"], " "), "name is ' '; a category name is a non-empty string"),
    "category name null": (setitem([*CAT, "name"], None), "name is None"),
    "category without name": (delitem([*CAT, "name"]), "categories[0] (id 1): no 'name'"),
    "category a list": (setitem([*CAT], [1, "a"]), "categories[0] is a JSON array, not an object"),
    "annotation without bbox": (delitem([*ANN, "bbox"]), "annotations[0] (id 1): no 'bbox'"),
    "annotation without id": (delitem([*ANN, "id"]), "annotations[0]: no 'id'"),
    "annotation a number": (setitem([*ANN], 3), "annotations[0] is a JSON number, not an object"),
    "duplicate annotation id": (setitem(["annotations", 1, "id"], 1), "annotations[1] (id 1): id 1 is also the id of annotations[0]"),
    "unknown image": (setitem([*ANN, "image_id"], 99), "image_id 99 is not the id of an entry of 'images'"),
    "image_id a string": (setitem([*ANN, "image_id"], "1"), "image_id '1' is not the id of an entry of 'images'"),
    "unknown category": (setitem([*ANN, "category_id"], 7), "category_id 7 is not a category (the category ids are 1, 2)"),
    "category_id null": (setitem([*ANN, "category_id"], None), "category_id None is not a category"),
    "bbox three numbers": (setitem([*ANN, "bbox"], [1, 2, 3]), "bbox is [1, 2, 3]; a bbox is 4 finite numbers [x, y, width, height]"),
    "bbox five numbers": (setitem([*ANN, "bbox"], [1, 2, 3, 4, 5]), "a bbox is 4 finite numbers"),
    "bbox strings": (setitem([*ANN, "bbox"], ["1", "2", "3", "4"]), "a bbox is 4 finite numbers"),
    "bbox booleans": (setitem([*ANN, "bbox"], [True, 2, 3, 4]), "a bbox is 4 finite numbers"),
    "bbox null": (setitem([*ANN, "bbox"], None), "bbox is None"),
    "bbox object": (setitem([*ANN, "bbox"], {"x": 1}), "a bbox is 4 finite numbers"),
    "bbox nested": (setitem([*ANN, "bbox"], [[1, 2], [3, 4]]), "a bbox is 4 finite numbers"),
    "bbox nan": (setitem([*ANN, "bbox"], [1, 2, float("nan"), 4]), "bbox is [1, 2, nan, 4]"),
    "bbox infinite": (setitem([*ANN, "bbox"], [1, float("inf"), 3, 4]), "a bbox is 4 finite numbers"),
    "bbox huge integer": (setitem([*ANN, "bbox"], [10 ** 400, 2, 3, 4]), "a bbox is 4 finite numbers"),
    "bbox beyond float32": (setitem([*ANN, "bbox"], [1, 2, 1e39, 4]), "a bbox is 4 finite numbers"),
    "corner beyond float32": (setitem([*ANN, "bbox"], [3e38, 2, 3e38, 4]), "a bbox is 4 finite numbers"),
    "iscrowd 2": (setitem([*ANN, "iscrowd"], 2), "iscrowd is 2; it is 0 (one object) or 1 (a crowd)"),
    "iscrowd a string": (setitem([*ANN, "iscrowd"], "1"), "iscrowd is '1'"),
    "image missing on disk": (setitem(["images", 1, "file_name"], "gone.png"), "1 of 2 images are not in"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_is_a_clear_coco_error(case, tmp_path, image_dir):
    make, expected = MALFORMED[case]
    path = put(tmp_path, make())
    with pytest.raises(CocoError) as e:
        read_coco(path, image_dir)
    assert isinstance(e.value, TaoNbError) and len(str(e.value)) < 1000
    assert str(e.value).startswith(f"{path}: ") and expected in str(e.value), str(e.value)


def test_missing_images_are_listed_with_their_paths(tmp_path, image_dir):
    doc = base()
    doc["images"] += [{"id": 10 + i, "file_name": f"gone{i}.png", "width": 4, "height": 4} for i in range(7)]
    with pytest.raises(CocoError, match="7 of 9 images are not in") as e:
        read_coco(put(tmp_path, doc), image_dir)
    assert str(image_dir / "gone0.png") in str(e.value) and "and 2 more" in str(e.value)


def test_missing_file_folder_and_image_folder(tmp_path, image_dir):
    with pytest.raises(CocoError, match="annotation file not found"):
        read_coco(tmp_path / "nope.json", image_dir)
    with pytest.raises(CocoError, match="is a folder, not a COCO annotation file"):
        read_coco(tmp_path, image_dir)
    with pytest.raises(CocoError, match="image folder .* not found"):
        read_coco(put(tmp_path, base()), tmp_path / "no_images")


@pytest.mark.parametrize("bbox, crowd, reason", [
    ([5, 5, 0, 3], 0, "width or height <= 0"),
    ([5, 5, 3, -1], 0, "width or height <= 0"),
    ([1e8, 5, 1, 3], 0, "width or height <= 0"),  # the corners are equal in float32
    ([1, 1, 8, 8], 1, "iscrowd=1"),
    ([1, 1, 0, 8], 1, "iscrowd=1"),
])
def test_crowd_and_empty_boxes_are_skipped_and_listed(bbox, crowd, reason, tmp_path, image_dir):
    doc = base()
    doc["annotations"].append({"id": 9, "image_id": 2, "category_id": 1, "bbox": bbox, "iscrowd": crowd})
    ds = read_coco(put(tmp_path, doc), image_dir)
    assert [(s.line, s.class_name, s.reason) for s in ds.skipped] == [(9, "trafficlight", reason)]
    assert ds.image(2).annotations.classes == ["person"]
    assert ds.skipped[0].file == str(tmp_path / "ann.json")


def test_reads_in_file_order_with_tao_class_names(tmp_path, image_dir, capsys):
    doc = base()
    doc["images"].reverse()
    ds = read_coco(put(tmp_path, doc), image_dir)
    assert capsys.readouterr().out == ""  # pycocotools' prints are silenced
    assert [im.id for im in ds] == [2, 1] and [ds[i].file_name for i in range(2)] == ["sub/b.png", "a.png"]
    a = ds.image(1).annotations
    assert a.classes == ["trafficlight"] and a.frame_id == "a" and a.image_path == image_dir / "a.png"
    np.testing.assert_array_equal(a.boxes, np.array([[1, 2, 11, 7]], np.float32))
    assert ds.num_classes == 3 and ds.class_names == {1: "trafficlight", 2: "person"}
    assert len(ds.coco.getAnnIds()) == 2  # pycocotools' index is there for COCOeval and friends


def test_extra_keys_and_empty_lists_are_fine(tmp_path, image_dir):
    doc = base()
    doc["info"] = {"year": 2017}
    doc["annotations"][0].update(segmentation=[[1, 2, 3, 4]], area=50.0)
    assert len(read_coco(put(tmp_path, doc), image_dir)) == 2
    empty = {"images": [], "annotations": [], "categories": []}
    ds = read_coco(put(tmp_path, empty), image_dir)
    assert (len(ds), ds.num_classes, list(ds)) == (0, 1, [])


def test_category_names_that_collide_are_merged_with_a_warning(tmp_path, image_dir, caplog):
    doc = base()
    doc["categories"][1]["name"] = "trafficlight"
    ds = read_coco(put(tmp_path, doc), image_dir)
    assert "share a class name" in caplog.text
    assert [im.annotations.classes for im in ds] == [["trafficlight"], ["trafficlight"]]


# --- fuzzing -------------------------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=5)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                           max_leaves=10)
numbers = st.integers(-10 ** 6, 10 ** 6) | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-2 ** 1100, 2 ** 1100)
bboxes = st.lists(numbers, min_size=4, max_size=4) | st.lists(st.floats(-1e3, 1e3), min_size=0, max_size=6) | json_values
annotation = st.fixed_dictionaries(
    {"id": st.integers(0, 5) | json_values, "image_id": st.sampled_from([1, 2, 3]) | json_values,
     "category_id": st.sampled_from([1, 2, 3]) | json_values, "bbox": bboxes},
    optional={"iscrowd": st.sampled_from([0, 1]) | json_values, "area": json_values, "segmentation": json_values})
entries = st.lists(annotation, max_size=6) | st.lists(json_values, max_size=3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries)
def test_fuzzed_annotations_read_or_fail_clearly(tmp_path, image_dir, anns):
    doc = base()
    doc["annotations"] = anns
    path = put(tmp_path, doc)
    try:
        ds = read_coco(path, image_dir)
    except CocoError as e:
        assert str(e).startswith(f"{path}: ") and len(str(e)) < 1000  # long values are shortened
        return
    images = list(ds)
    kept = sum(len(im.annotations) for im in images)
    assert kept + len(ds.skipped) == len(anns)  # every annotation is either an object or listed
    for im in images:
        b = im.annotations.boxes
        assert np.isfinite(b).all() and (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()


image = st.fixed_dictionaries(
    {"id": st.sampled_from([1, 2]) | json_values, "file_name": st.sampled_from(["a.png", "sub/b.png"]) | json_values,
     "width": st.sampled_from([32, 32.0]) | json_values, "height": st.sampled_from([24]) | json_values})
category = st.fixed_dictionaries({"id": st.sampled_from([1, 2, 3]) | json_values,
                                  "name": st.sampled_from(["car", "Traffic Light"]) | json_values})
documents = st.fixed_dictionaries({"images": st.lists(image, max_size=3) | json_values,
                                   "annotations": entries | json_values,
                                   "categories": st.lists(category, max_size=3) | json_values}) | json_values


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents)
def test_fuzzed_documents_read_or_fail_clearly(tmp_path, image_dir, doc):
    path = put(tmp_path, json.dumps(doc))
    try:
        ds = read_coco(path, image_dir)
    except CocoError as e:
        assert str(e).startswith(f"{path}: ") and len(str(e)) < 1000
        return
    assert sum(len(im.annotations) for im in ds) + len(ds.skipped) == len(doc["annotations"])


valid_box = st.tuples(st.floats(0, 500, width=32), st.floats(0, 500, width=32),
                      st.floats(0.5, 300, width=32), st.floats(0.5, 300, width=32))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.tuples(st.sampled_from(["car", "Traffic Light"]), valid_box), max_size=5), min_size=1, max_size=4))
def test_write_then_read_gives_the_same_objects(tmp_path, image_dir, per_image):
    images = []
    for i, objects in enumerate(per_image):
        boxes = [[x, y, x + w, y + h] for _, (x, y, w, h) in objects]
        ann = ImageAnnotations(f"im{i}", [c for c, _ in objects], np.array(boxes, np.float32).reshape(-1, 4))
        images.append(CocoImage(i + 1, f"im{i}.png", 64, 48, ann))
    back = read_coco(write_coco(tmp_path / "w.json", images, {1: "car", 2: "Traffic Light"}), image_dir, check_images=False)
    assert [im.id for im in back] == [im.id for im in images]
    for a, b in zip(images, back):
        assert b.annotations.classes == [c.lower().replace(" ", "") for c in a.annotations.classes]
        np.testing.assert_allclose(b.annotations.boxes, a.annotations.boxes, rtol=1e-6, atol=1e-4)


def test_write_refuses_objects_of_unknown_classes(tmp_path):
    im = CocoImage(1, "a.png", 8, 8, ImageAnnotations("a", ["bus"], [[1, 1, 4, 4]]))
    with pytest.raises(TaoNbError, match=r"has objects of \['bus'\], which are not among the categories \['car'\]"):
        write_coco(tmp_path / "x.json", [im], {1: "car"})
    assert not (tmp_path / "x.json").exists()


def test_a_coco_sized_file_reads_in_seconds(tmp_path):
    rng = np.random.default_rng(0)
    n_img, n_ann = 20_000, 160_000
    xy = rng.uniform(0, 500, (n_ann, 2)).round(2); wh = rng.uniform(1, 100, (n_ann, 2)).round(2)
    doc = {"images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(n_img)],
           "annotations": [{"id": k, "image_id": int(k % n_img), "category_id": int(k % 80) + 1,
                            "bbox": [*xy[k].tolist(), *wh[k].tolist()], "iscrowd": 0} for k in range(n_ann)],
           "categories": [{"id": c, "name": f"class {c}"} for c in range(1, 81)]}
    path = put(tmp_path, doc)
    # measured against parsing the same JSON in the same run, so that a loaded machine slows both alike
    t = time.perf_counter(); json.loads(path.read_text()); parse = time.perf_counter() - t
    t = time.perf_counter()
    ds = read_coco(path, tmp_path, check_images=False)
    took = time.perf_counter() - t
    assert took < 6 * parse, f"read_coco took {took:.2f} s, {took / parse:.1f}x the JSON parse alone (about 2.5x expected)"
    assert len(ds) == n_img and len(ds[5].annotations) == n_ann // n_img
    assert ds[5].annotations.classes[0] == "class6"
