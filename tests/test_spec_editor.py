"""The spec editor against every spec the repository ships, the broken-spec corpus and the command line."""
import os

import pytest

from conftest import BROKEN_SPECS, FIXTURES, SEED_SPECS, tao_nb
from tao_nb.core import TaoNbError
from tao_nb.data.sample import sample_class_mapping, sample_convert_spec, sample_ssd_spec
from tao_nb.spec import SPEC_KINDS, SpecError, load_spec, spec_to_text
from tao_nb.spec_editor import (ListField, MapField, OneofField, ScalarField, SectionField, SectionListField, SpecEditor,
                                split_path)
from tao_nb.spec_schema import detect_kind, field_info, parse_spec_text, read_spec_file

SHIPPED = SEED_SPECS + [FIXTURES / "specs" / "augment_example.txt"]


@pytest.fixture(scope="module")
def editors():
    """One editor per kind of spec, built once: loading a spec of the same kind reuses its form."""
    return {kind: SpecEditor(kind=kind) for kind in SPEC_KINDS}


def _sample_specs(root):
    """The specs `tao-nb data make_sample` writes, in the variants its options give."""
    data, records = root / "data", root / "tfrecords" / "sample"
    return {"sample_convert.txt": sample_convert_spec(data),
            "sample_ssd_train.txt": sample_ssd_spec(data, records),
            "sample_ssd_retrain.txt": sample_ssd_spec(data, records, optimizer="sgd", regularizer="NO_REG"),
            "sample_ssd_mobilenet.txt": sample_ssd_spec(data, records, arch="mobilenet_v2", nlayers=None,
                                                        image_size=(300, 300))}


def _spec_texts(root):
    """The text of every spec the repository ships or generates (the generated ones pointing under `root`), by name."""
    return {**{p.name: p.read_text() for p in SHIPPED}, **_sample_specs(root)}


def _write_specs(root):
    """Every spec the repository ships or generates, written under `root`; their paths."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in _spec_texts(root).items(): (root / name).write_text(text)
    return [root / name for name in _spec_texts(root)]


@pytest.mark.parametrize("name", list(_spec_texts(FIXTURES)), ids=str)
def test_every_spec_round_trips(name, editors, tmp_path):
    path = tmp_path / name
    path.write_text(_spec_texts(tmp_path)[name])
    spec = load_spec(path)
    editor = editors[detect_kind(path.read_text())]
    editor.load(path)
    assert editor.spec == spec
    assert editor.problems == []
    saved = editor.save(tmp_path / "out" / name)
    assert saved.read_text() == spec_to_text(spec) == editor.text
    editor.load(saved)
    assert editor.spec == spec  # loading the saved file gives the same spec


def _problems_of_file(path):
    try:
        load_spec(path)
    except SpecError as e:
        return e.problems
    return []


@pytest.mark.parametrize("path", BROKEN_SPECS, ids=lambda p: p.stem)
def test_broken_specs_show_the_cli_problems_at_their_fields(path, editors):
    text = read_spec_file(path)
    try:
        spec = parse_spec_text(text, detect_kind(text, str(path)), str(path))
    except SpecError as unparsable:  # the editor refuses it with the command line's message
        editor = editors["ssd"]
        with pytest.raises(SpecError) as refused:
            editor.load(path)
        assert str(refused.value) == str(unparsable)
        return
    editor = editors[detect_kind(text)]
    editor.load(path)
    assert editor.spec == spec  # invalid values survive the editor unchanged
    cli = [(p.path, p.message) for p in _problems_of_file(path) if "is given twice" not in p.message]
    assert sorted((p.path, p.message) for p in editor.errors) == sorted(cli)
    for p in editor.problems:
        if p.path: assert p in editor[p.path].problems, (p, editor[p.path])
        else: assert p.message.split(":")[0] in editor.top_problems.value


def test_a_map_key_given_twice(editors, tmp_path):
    duplicate = FIXTURES / "specs" / "broken" / "class_mapping_duplicate_key.txt"
    editor = editors["ssd"]
    editor.load(duplicate)  # the file's second "car" has replaced the first: the status line says so
    assert 'dataset_config.target_class_mapping["car"]: the key "car" is given twice; the editor keeps the last' in \
        editor.status.value.replace("&quot;", '"')
    mapping = editor["dataset_config.target_class_mapping"]
    row = mapping.add("car", "vehicle")  # the same mistake, made in the editor
    cli = [p for p in _problems_of_file(duplicate) if "is given twice" in p.message]
    mine = [p for p in editor.problems if "is given twice" in p.message]
    assert [(p.path, p.message) for p in mine] == [(p.path, p.message) for p in cli]
    assert mine[0] in row.problems
    with pytest.raises(SpecError, match="is given twice"):
        editor.save(tmp_path / "never.txt")
    assert not (tmp_path / "never.txt").exists()
    mapping.remove(mapping.rows.index(row))
    assert not [p for p in editor.problems if "is given twice" in p.message]


def test_validation_follows_every_kind_of_widget(tmp_path):
    (tmp_path / "spec.txt").write_text(sample_ssd_spec(tmp_path / "data", tmp_path / "tfrecords" / "sample"))
    editor = SpecEditor(tmp_path / "spec.txt")
    paths = lambda: [p.path for p in editor.problems]
    edits = [  # (view path, widget, bad value, the problem's path, good value)
        ("ssd_config.scales", "input", "[0.1, 0.2]", "ssd_config.scales", "[0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.05]"),
        ("ssd_config.arch", "input", "vgg", "ssd_config.nlayers", "resnet"),  # a dropdown: resnet10 is no vgg
        ("ssd_config.pos_iou_thresh", "input", 0.3, "ssd_config.neg_iou_thresh", 0.5),  # a float box
        ("training_config.num_epochs", "present", False, "training_config.num_epochs", True),  # a tick
        ("training_config.regularizer.type", "input", "L2", None, "L1"),  # an enum
        ("training_config.early_stopping", "present", True, "training_config.early_stopping.patience", False),
        ("eval_config.visualize_pr_curve", "input", False, None, True),  # a checkbox
    ]
    for view, widget, bad, problem, good in edits:
        assert paths() == [], view
        setattr(getattr(editor[view], widget), "value", bad)
        assert paths() == ([problem] if problem else []), view
        setattr(getattr(editor[view], widget), "value", good)
    editor["training_config.num_epochs"].input.value = 60  # ticking a field back gives it its default (none here)
    weight = editor["training_config.regularizer.weight"]
    weight.present.value = False
    assert paths() == ["training_config.regularizer.weight"]
    assert "L1 needs a weight in (0, 1), got nothing" in weight.message.value
    weight.input.value = 3e-6
    blocks = editor["ssd_config.freeze_blocks"]
    blocks.add(9)  # a list row
    assert paths() == ["ssd_config.freeze_blocks[0]"]
    assert "9 is not a block of resnet" in blocks.rows[0].message.value
    blocks.rows[0].input.value = 1
    means = editor["augmentation_config.image_mean"]
    means.add("l", 100.0)  # a map row, and a rule across two fields
    assert paths() == ["augmentation_config.image_mean"]
    editor["augmentation_config.output_channel"].input.value = 1
    assert paths() == []
    editor["dataset_config.target_class_mapping"].add("truck", "")
    assert paths() == ['dataset_config.target_class_mapping["truck"]']
    editor['dataset_config.target_class_mapping["truck"]'].input.value = "car"
    sources = editor["dataset_config.validation_data_sources"]
    sources.add()  # a repeated section
    assert paths() == ["dataset_config.validation_data_sources[1]"]
    assert "give tfrecords_path" in sources.rows[1].message.value
    sources.rows[1].remove_button.click()
    editor["training_config.load_model"].choice.value = "pruned_model_path"  # a oneof
    editor["training_config.pruned_model_path"].input.value = "pruned.keras"
    assert paths() == []
    spec = load_spec(editor.save(tmp_path / "edited.txt"))
    assert (spec.training_config.pruned_model_path, spec.augmentation_config.output_channel) == ("pruned.keras", 1)
    assert list(spec.ssd_config.freeze_blocks) == [1] and spec.training_config.num_epochs == 60


def test_saved_specs_pass_the_cli(editors, tmp_path):
    """Edit every kind of spec in the editor, save it, and run `tao-nb spec validate` on what was saved."""
    saved = []
    for path in _write_specs(tmp_path / "in"):
        kind = detect_kind(path.read_text())
        editor = editors[kind]
        editor.load(path)
        if kind in ("ssd", "yolo_v3"):
            editor["training_config.num_epochs"].input.value = 3
            editor["nms_config.top_k"].input.value = 50
        elif kind == "dataset_convert" and editor["convert_config_type"].choice.value == "kitti_config":
            editor["kitti_config.num_shards"].input.value = 2
        elif kind == "augment":
            editor["random_seed"].input.value = 7
        assert editor.errors == [], path.name
        saved.append(editor.save(tmp_path / "out" / path.name))
    scratch = editors["dataset_convert"]  # a COCO conversion spec written from nothing, widget by widget
    scratch.set_spec(SPEC_KINDS["dataset_convert"]())
    scratch["convert_config_type"].choice.value = "coco_config"
    scratch["coco_config.root_directory_path"].input.value = str(tmp_path / "coco")
    for split in ("train", "val"):
        scratch["coco_config.img_dir_names"].add(f"images/{split}")
        scratch["coco_config.annotation_files"].add(f"annotations/{split}.json")
    scratch["coco_config.num_shards"].add(4)
    for label, target in sample_class_mapping().items(): scratch["target_class_mapping"].add(label, target)
    saved.append(scratch.save(tmp_path / "out" / "from_scratch.txt"))
    out = tao_nb("spec", "validate", *saved)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("ok: ") == len(saved)
    assert "3 epochs" in out.stdout and "COCO at" in out.stdout
    for path in saved:
        editors[detect_kind(path.read_text())].load(path)
        assert editors[detect_kind(path.read_text())].text == path.read_text()


def test_save_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "spec.txt"
    target.write_text("# the last good spec\n")
    editor = SpecEditor(SEED_SPECS[0])
    def interrupted(fd): raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(TaoNbError, match="cannot write .*spec.txt: No space left on device"):
        editor.save(target)
    editor.file.value = str(target)
    editor.save_button.click()
    assert "not saved: cannot write" in editor.status.value
    assert target.read_text() == "# the last good spec\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.txt"]  # no temporary file left behind


def _field_paths(desc, prefix=""):
    """(path, field) of every field the editor should offer, through singular sections."""
    for fd in desc.fields:
        info = field_info(fd)
        if info.alias_of: continue
        path = f"{prefix}.{fd.name}" if prefix else fd.name
        yield path, fd
        if fd.message_type is not None and not info.repeated: yield from _field_paths(fd.message_type, path)


@pytest.mark.parametrize("kind", list(SPEC_KINDS))
def test_every_field_of_every_schema_has_its_view(kind, editors):
    editor = editors[kind]
    for path, fd in _field_paths(SPEC_KINDS[kind].DESCRIPTOR):
        info = field_info(fd)
        expected = (MapField if info.is_map else SectionListField if info.repeated and fd.message_type else
                    ListField if info.repeated else SectionField if fd.message_type else ScalarField)
        assert type(editor[path]) is expected, path
        if fd.containing_oneof is not None:  # the oneof has its view too, by its name
            section = path.rsplit(".", 1)[0] + "." if "." in path else ""
            assert type(editor[section + fd.containing_oneof.name]) is OneofField, path
    with pytest.raises(KeyError, match="no such field"):
        editor["no_such_field"]


def test_split_path_round_trips_problem_paths():
    assert split_path('a.b[12].c["x y"]') == ["a", "b", 12, "c", '"x y"']
    with pytest.raises(ValueError, match="is not a field path"):
        split_path("a.[1]")
