"""The spec system against the TAO docs' example specs and a corpus of broken specs."""
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import BROKEN_SPECS, FIXTURES, SEED_SPECS
from tao_nb.spec import SpecError, load_spec, spec_from_text, spec_kind, spec_to_text, validate_spec
from tao_nb.spec_schema import parse_spec_text


@pytest.mark.parametrize("path", SEED_SPECS, ids=lambda p: p.name)
def test_seed_specs_load_validate_and_round_trip(path):
    spec = load_spec(path)
    kind = spec_kind(spec)
    text = spec_to_text(spec)
    again = parse_spec_text(text, kind)
    assert again == spec
    assert spec_to_text(again) == text


def test_six_seed_specs_cover_every_kind():
    kinds = sorted(spec_kind(load_spec(p)) for p in SEED_SPECS)
    assert kinds == ["dataset_convert"] * 4 + ["ssd", "yolo_v3"]


def _expectations(path):
    return [line.split("# expect: ", 1)[1].rstrip("\n") for line in path.read_text().splitlines() if line.startswith("# expect: ")]


@pytest.mark.parametrize("path", BROKEN_SPECS, ids=lambda p: p.stem)
def test_broken_spec_gives_clear_error(path):
    expected = _expectations(path)
    assert expected, f"{path.name} has no '# expect:' line"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    for exp in expected:
        assert exp.replace(path.name, str(path)) in message


def test_corpus_is_large_enough():
    assert len(BROKEN_SPECS) >= 50


def test_empty_file(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(SpecError, match=r"empty.txt: cannot tell which kind of spec"):
        load_spec(tmp_path / "empty.txt")
    with pytest.raises(SpecError, match=r"ssd_config: missing; this section is required"):
        load_spec(tmp_path / "empty.txt", kind="ssd")


def test_binary_file(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(SpecError, match=r"model.bin: not UTF-8 text"):
        load_spec(tmp_path / "model.bin")


def test_folder_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="is a folder"):
        load_spec(tmp_path)
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "nope.txt")


def test_windows_line_ends_and_bom(seed_spec, tmp_path):
    text = seed_spec("ssd_experiment.txt").read_text()
    (tmp_path / "crlf.txt").write_bytes(("\ufeff" + text).replace("\n", "\r\n").encode("utf-8"))
    assert load_spec(tmp_path / "crlf.txt") == load_spec(seed_spec("ssd_experiment.txt"))


# Fuzzing: any edit of a valid spec either loads or fails with a SpecError; nothing else escapes.
_SEED_TEXTS = [p.read_text() for p in SEED_SPECS]
_GARBAGE = st.sampled_from(["", "{", "}", ":", "[", "]", '"', "'", "-1", "1e40", "nan", "inf", "0x10", "1.5",
                            "true", "L3", "foo", "ssd_config", "key", "value", "#", "\\", "\u00e9", "[1, 2]", "<", ">"])


_ERROR_HEAD = re.compile(r"^fuzz\.txt(:\d+:\d+)?: \S")  # the file, the line and column where there is one, then the field


def _fuzz_once(text: str):
    "Load a mutated spec and validate it: fine, or a SpecError that names the file (and line, where there is one)."
    try:
        validate_spec(spec_from_text(text, file="fuzz.txt"))
    except SpecError as e:
        assert e.problems and all(_ERROR_HEAD.match(str(p)) for p in e.problems), str(e)


def _token_edits(index, edits) -> str:
    tokens = re.split(r"(\s+)", _SEED_TEXTS[index])
    for where, new in edits:
        tokens[int(where * (len(tokens) - 1))] = new
    return "".join(tokens)


def _line_edits(index, edits) -> str:
    "Whole lines deleted, repeated or moved: what a bad merge or a careless copy does to a spec."
    lines = _SEED_TEXTS[index].splitlines(keepends=True)
    for op, a, b in edits:
        i, j = int(a * (len(lines) - 1)), int(b * (len(lines) - 1))
        if op == "delete" and len(lines) > 1: del lines[i]
        elif op == "repeat": lines.insert(j, lines[i])
        elif op == "move": lines.insert(j, lines.pop(i))
    return "".join(lines)


_TOKEN_EDITS = st.tuples(st.sampled_from(range(len(_SEED_TEXTS))),
                         st.lists(st.tuples(st.floats(0, 1), _GARBAGE), min_size=1, max_size=4))
_LINE_EDITS = st.tuples(st.sampled_from(range(len(_SEED_TEXTS))),
                        st.lists(st.tuples(st.sampled_from(["delete", "repeat", "move"]), st.floats(0, 1), st.floats(0, 1)),
                                 min_size=1, max_size=3))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TOKEN_EDITS, _LINE_EDITS)
def test_fuzzed_specs_never_crash(tokens, lines):
    _fuzz_once(_token_edits(*tokens))
    _fuzz_once(_line_edits(*lines))


@pytest.mark.slow
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TOKEN_EDITS, _LINE_EDITS)
def test_thousands_of_fuzzed_specs_never_crash(tokens, lines):
    _fuzz_once(_token_edits(*tokens))
    _fuzz_once(_line_edits(*lines))


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=32, min_value=2**-20, max_value=0.5),
       st.floats(allow_nan=False, allow_infinity=False, width=32, min_value=128, max_value=4096))
def test_float_fields_round_trip_exactly(weight, mean):
    spec = load_spec(FIXTURES / "specs" / "seeds" / "ssd_experiment.txt")
    spec.training_config.regularizer.weight = weight
    spec.augmentation_config.image_mean["g"] = mean
    again = spec_from_text(spec_to_text(spec))
    assert again.training_config.regularizer.weight == spec.training_config.regularizer.weight
    assert math.isclose(again.augmentation_config.image_mean["g"], mean, rel_tol=1e-6)
    assert again == spec
