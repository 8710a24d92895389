"""Label and annotation fuzzing (issue 8): KITTI label files and COCO JSON broken line by line, field by field and
byte by byte. Each input either reads with every box finite and equal to what the file says (bad boxes listed as
skipped), or fails with a TaoNbError naming the file and the line (KITTI) or entry (COCO); never another exception,
never a silently wrong box. A few representative cases go through `dataset_convert`, and the boxes in the TFRecords
are read back. tests/test_data_coco.py holds the COCO entry-level corpus and fuzzers; this file adds what it lacks.

The fuzzers count their cases per mutation and outcome and print the counts (past pytest's capture); a failure
does not stop them: every failing input is counted and the shortest ones are shown.
"""
import copy
import json
import re
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from tao_nb.core import TaoNbError
from tao_nb.data.coco import CocoError, coco_class_name, read_coco
from tao_nb.data.kitti import KITTI_FIELDS, KittiLabelError, pair_kitti, read_kitti_label

BOM = b"\xef\xbb\xbf"
GOOD = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"
PED = "Pedestrian 0.00 2 0.21 423.17 173.67 433.17 224.03 1.60 0.38 0.30 -5.87 1.63 23.11 -0.03"


def line_with(base=GOOD, **fields):
    """`base` with some fields replaced, by KITTI field name."""
    t = base.split()
    for k, v in fields.items(): t[KITTI_FIELDS.index(k)] = v
    return " ".join(t)


def f32(*v): return np.array(v, np.float32)


# --- KITTI: a corpus of bad and odd label files -----------------------------------------------------------------------
# name: (file bytes, expected). expected is ("error", line, text in the message) or ("ok", objects, skipped lines).
KITTI_CASES = {
    "14 fields": (" ".join(GOOD.split()[:14]), ("error", 1, "14 fields instead of 15")),
    "17 fields": (GOOD + " 0.9 0.9", ("error", 1, "17 fields instead of 15")),
    "15 then 16 fields": (GOOD + "\n" + PED + " 0.5", ("error", 2, "16 fields where earlier lines have 15")),
    "only a class name": ("Car\n", ("error", 1, "1 fields instead of 15")),
    "class name with a space": (GOOD.replace("Car", "Traffic Light"), ("error", 1, "field 2 (truncated) is 'Light'")),
    "not a number": (line_with(x2="abc"), ("error", 1, "field 7 (x2) is 'abc', not a number")),
    "decimal comma": (line_with(y1="173,33"), ("error", 1, "field 6 (y1) is '173,33', not a number")),
    "hex number": (line_with(x1="0x10"), ("error", 1, "field 5 (x1) is '0x10', not a number")),
    "nan": (line_with(x1="nan"), ("error", 1, "field 5 (x1) is nan, not a finite number")),
    "NaN in a 3D field": (line_with(z="NaN"), ("error", 1, "field 14 (z) is NaN")),
    "inf": (line_with(y2="inf"), ("error", 1, "field 8 (y2) is inf")),
    "-Infinity": (line_with(alpha="-Infinity"), ("error", 1, "field 4 (alpha) is -Infinity")),
    "1e308 box corner": (line_with(x2="1e308"), ("error", 1, "field 7 (x2) is 1e308")),
    "1e39 box corner (beyond float32)": (line_with(y2="1e39"), ("error", 1, "field 8 (y2) is 1e39")),
    "-1e39 box corner": (line_with(x1="-1e39"), ("error", 1, "field 5 (x1) is -1e39")),
    "1e300 truncation": (line_with(truncated="1e300"), ("error", 1, "field 2 (truncated) is 1e300")),
    "1e40 rotation": (line_with(rotation_y="1e40"), ("error", 1, "field 15 (rotation_y) is 1e40")),
    "float32 max is fine": (line_with(length="3.4028235e38"), ("ok", 1, [])),
    "a 400-digit number": (line_with(x2="9" * 400), ("error", 1, "field 7 (x2) is " + "9" * 30 + "... (400 characters), not a finite")),
    "occluded 0.5": (line_with(occluded="0.5"), ("error", 1, "field 3 (occluded) is 0.5, not an integer")),
    "occluded 1e300": (line_with(occluded="1e300"), ("error", 1, "field 3 (occluded) is 1e300")),
    "occluded 2**63": (line_with(occluded="9223372036854775808"), ("error", 1, "field 3 (occluded)")),
    "occluded 1.0 and 3e0": (line_with(occluded="1.0") + "\n" + line_with(occluded="3e0"), ("ok", 2, [])),
    "negative box inside out of the image": (line_with(x1="-20.5", y1="-3", x2="-1", y2="5"), ("ok", 1, [])),
    "inverted x": (line_with(x1="614.12", x2="587.01"), ("ok", 0, [1])),
    "inverted y": (GOOD + "\n" + line_with(y1="300", y2="200"), ("ok", 1, [2])),
    "empty box": (line_with(x2="587.01"), ("ok", 0, [1])),
    "box empty once stored as float32": (line_with(x1="100000000", x2="100000001"), ("ok", 0, [1])),
    "unknown class": (line_with(type="Spaceship") + "\n" + GOOD, ("ok", 2, [])),
    "class that looks like a number": (line_with(type="7"), ("ok", 1, [])),
    "empty file": ("", ("ok", 0, [])),
    "only blank lines": ("\n\n   \n\t\n", ("ok", 0, [])),
    "stray blank lines": ("\n\n" + GOOD + "\n\n\n" + line_with(x2="1") + "\n  \n", ("ok", 1, [6])),
    "no final newline": (GOOD + "\n" + PED, ("ok", 2, [])),
    "windows line ends": (GOOD + "\r\n\r\n" + PED + "\r\n", ("ok", 2, [])),
    "old mac line ends": (GOOD + "\r" + line_with(x2="1") + "\r" + PED, ("ok", 2, [2])),
    "mixed line ends, error line counted right": (GOOD + "\r\n" + PED + "\r" + GOOD + "\n" + line_with(x1="x"),
                                                  ("error", 4, "field 5 (x1) is 'x'")),
    "form feed on a line of its own": (GOOD + "\n\x0c\n" + line_with(x1="x"), ("error", 3, "field 5 (x1) is 'x'")),
    "unicode line separator inside a line": (GOOD + "\u2028" + PED + "\n" + GOOD, ("error", 1, "30 fields")),
    "NEL inside a line": (GOOD + "\x85" + PED, ("error", 1, "30 fields")),
    "trailing spaces and tabs": (GOOD + " \t  \n" + PED + "\t\n", ("ok", 2, [])),
    "tabs between fields": (GOOD.replace(" ", "\t") + "\n" + PED.replace(" ", "  \t "), ("ok", 2, [])),
    "leading whitespace": ("   " + GOOD + "\n\t" + PED, ("ok", 2, [])),
    "byte order mark": (BOM + GOOD.encode(), ("ok", 1, [])),
    "byte order mark and windows line ends": (BOM + (GOOD + "\r\n" + PED + "\r\n").encode(), ("ok", 2, [])),
    "byte order mark in the middle": (BOM + GOOD.encode() + b"\n" + BOM + PED.encode(),
                                      ("error", 2, "field 1 (type) is '\\ufeffPedestrian'")),
    "zero-width space in a class": (line_with(type="Car\u200b"), ("error", 1, "U+200B")),
    "NUL in a class": (line_with(type="Car\x00"), ("error", 1, "U+0000")),
    "file of NUL bytes": (b"\x00" * 64, ("error", 1, "1 fields instead of 15")),
    "latin-1 class name": (GOOD.encode() + b"\n" + line_with(type="Caf\xe9").encode("latin-1"),
                           ("error", 2, "byte 86 is not UTF-8")),
    "invalid byte on line 3": ((GOOD + "\r\n\r\n").encode() + b"\xff" + PED.encode(), ("error", 3, "byte 86 is not UTF-8")),
    "UTF-16": ((GOOD + "\n").encode("utf-16"), ("error", 1, "UTF-16")),
    "cut off in the middle of a line": (GOOD + "\n" + PED[:40], ("error", 2, "fields instead of 15")),
    "scientific notation": (line_with(x1="5.8701e2", x2="6.1412E+02"), ("ok", 1, [])),
    "plus signs and bare dots": (line_with(x1="+587.01", y1="173.", x2="614.12", alpha=".5"), ("ok", 1, [])),
    "underscores in numbers, as Python reads them": (line_with(x1="5_87"), ("ok", 1, [])),
    "a very long line": (" ".join([GOOD] * 500), ("error", 1, "7500 fields instead of 15")),
}


@pytest.mark.parametrize("case", list(KITTI_CASES))
def test_kitti_corpus(case, tmp_path):
    content, expected = KITTI_CASES[case]
    path = tmp_path / "000007.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow while casting to float32 is a silently wrong value
        if expected[0] == "error":
            _, line, text = expected
            with pytest.raises(KittiLabelError) as e:
                read_kitti_label(path)
            msg = str(e.value)
            assert msg.startswith(f"{path}:{line}: ") and text in msg and len(msg) < 600, msg
            return
        ann, skipped = read_kitti_label(path)
    _, n, skipped_lines = expected
    assert len(ann) == n and [s.line for s in skipped] == skipped_lines
    assert all(s.file == str(path) and s.reason.startswith("x1 >= x2 or y1 >= y2") for s in skipped)
    check_against_text(ann, skipped, content if isinstance(content, bytes) else content.encode())


def universal_lines(text: str) -> list[str]:
    "Lines as Python's open() and TAO's readlines() see them: split at \\r\\n, \\r or \\n only."
    return re.split(r"\r\n|\r|\n", text)


def check_against_text(ann, skipped, data: bytes):
    """Every object of `ann` is exactly what its line says (as float32) and every other non-blank line is skipped."""
    text = data[len(BOM):].decode() if data.startswith(BOM) else data.decode()
    rows = [(i, ln.split()) for i, ln in enumerate(universal_lines(text), 1) if ln.split()]
    skipped_lines = {s.line for s in skipped}
    kept = [(i, t) for i, t in rows if i not in skipped_lines]
    assert len(kept) == len(ann) and len(kept) + len(skipped) == len(rows)
    assert np.isfinite(ann.boxes).all() and (ann.boxes[:, 2] > ann.boxes[:, 0]).all() and (ann.boxes[:, 3] > ann.boxes[:, 1]).all()
    for k, (i, t) in enumerate(kept):
        v = np.array([float(x) for x in t[1:]], np.float32)
        assert ann.classes[k] == t[0]
        got = np.concatenate([[ann.truncation[k], ann.occlusion[k], ann.alpha[k]], ann.boxes[k], ann.dimensions[k],
                              ann.location[k], [ann.rotation_y[k]]] + ([[ann.scores[k]]] if len(t) == 16 else []))
        np.testing.assert_array_equal(got.astype(np.float32), v, err_msg=f"line {i}")
    for s in skipped:
        t = dict(rows)[s.line]
        assert s.class_name == t[0] and s.box == tuple(float(x) for x in t[4:8])


def test_label_file_that_is_a_folder_or_unreadable(tmp_path):
    (tmp_path / "000001.txt").mkdir()
    with pytest.raises(KittiLabelError, match=f"^{re.escape(str(tmp_path / '000001.txt'))}: is a folder"):
        read_kitti_label(tmp_path / "000001.txt")
    (tmp_path / "file").write_text(GOOD)
    with pytest.raises(KittiLabelError, match="cannot read the label file"):  # a path through a file: NotADirectoryError
        read_kitti_label(tmp_path / "file" / "000001.txt")
    with pytest.raises(KittiLabelError, match="label file not found"):
        read_kitti_label(tmp_path / "nope.txt")


def test_predictions_and_ground_truth_field_counts(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text(GOOD + " 0.87\n" + PED + " 1e-3\n")
    ann, _ = read_kitti_label(p, with_scores=True)
    np.testing.assert_array_equal(ann.scores, f32(0.87, 1e-3))
    with pytest.raises(KittiLabelError, match=f"^{re.escape(str(p))}:1: 16 fields instead of 15"):
        read_kitti_label(p, with_scores=False)
    p.write_text(GOOD + " 1e39\n")
    with pytest.raises(KittiLabelError, match=r":1: field 16 \(score\) is 1e39"):
        read_kitti_label(p, with_scores=True)


def test_pairing_lists_missing_labels_folders_and_orphans(tmp_path):
    img, lbl = tmp_path / "image_2", tmp_path / "label_2"
    img.mkdir(); lbl.mkdir()
    for i in ("a", "b", "c"): (img / f"{i}.png").write_bytes(b"png")
    (lbl / "a.txt").write_text(GOOD)
    (lbl / "b.txt").mkdir()  # a folder where a label file should be
    with pytest.raises(KittiLabelError) as e:
        pair_kitti(img, lbl)
    msg = str(e.value)
    assert "2 of 3 images" in msg and f"b.png (expected {lbl / 'b.txt'}, a folder)" in msg and f"c.png (expected {lbl / 'c.txt'})" in msg
    (lbl / "b.txt").rmdir()
    for i in ("b", "c"): (lbl / f"{i}.txt").write_text("")
    (lbl / "zz.txt").write_text(GOOD)  # a label without an image
    (lbl / "folder.txt").mkdir()  # not a label file at all
    pairs = pair_kitti(img, lbl)
    assert pairs.frame_ids == ["a", "b", "c"] and pairs.labels_without_image == [lbl / "zz.txt"]


# --- KITTI fuzzing ----------------------------------------------------------------------------------------------------

class FuzzStats:
    """Cases, outcomes and failures of a fuzzer, per mutation kind."""

    def __init__(self, name):
        self.name, self.cases, self.failures, self.failure_kinds = name, 0, [], Counter()
        self.per_kind = defaultdict(Counter)  # kind -> {"cases", "ok", "skip", "error", "failed"}

    def add(self, kinds, outcome, failure=None, data=None):
        self.cases += 1
        for k in set(kinds) or {"none"}:
            self.per_kind[k]["cases"] += 1; self.per_kind[k][outcome] += 1
            if failure: self.per_kind[k]["failed"] += 1
        if failure:
            self.failures.append((failure, data, sorted(set(kinds))))
            self.failure_kinds[re.sub(r"\d+", "N", failure.split(":")[0])] += 1

    def report(self) -> str:
        lines = [f"{self.name}: {self.cases} cases, {len(self.failures)} failures"]
        for k, c in sorted(self.per_kind.items()):
            lines.append(f"  {k:32s} cases {c['cases']:5d}  read {c['ok']:5d}  read, some skipped {c['skip']:5d}  "
                         f"error {c['error']:5d}  failed {c['failed']:4d}")
        lines += [f"  failures: {n} x {k}" for k, n in self.failure_kinds.most_common()]
        return "\n".join(lines)

    def check(self):
        if self.failures:
            shortest = sorted(self.failures, key=lambda f: len(f[1] or b""))[:3]
            raise AssertionError(self.report() + "\nshortest failing inputs:\n" +
                                 "\n".join(f"  {msg}\n    kinds {kinds}\n    input {data!r}" for msg, data, kinds in shortest))


CLASSES = ["Car", "Van", "Pedestrian", "Cyclist", "DontCare", "car", "Truck", "Person_sitting", "Misc"]
coord = st.floats(-60, 1300, allow_nan=False)
size = st.floats(0.5, 400)
small = st.floats(-200, 200)
formats = st.sampled_from(["{:.2f}", "{:.6g}", "{!r}", "{:e}", "{:.0f}"])


@st.composite
def kitti_line(draw):
    "The tokens of a valid KITTI line, formatted in one of several ways."
    x1, y1, w, h = draw(coord), draw(coord), draw(size), draw(size)
    fmt = draw(formats)
    if fmt == "{:.0f}": w, h = w + 1, h + 1  # rounding to whole pixels keeps the box non-empty
    vals = [draw(st.floats(0, 1)), None, draw(st.floats(-3.2, 3.2)), x1, y1, x1 + w, y1 + h] + [draw(small) for _ in range(7)]
    toks = [fmt.format(v) if v is not None else str(draw(st.sampled_from([0, 1, 2, 3, -1]))) for v in vals]
    return [draw(st.sampled_from(CLASSES))] + toks


ODD_TOKENS = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e308", "-1e308", "1e39", "-3.5e38", "3.4028235e38",
              "1e-50", "5e-324", "9223372036854775808", "1e300", "abc", "", "1,5", "0x10", "1_0", "\u0661\u0662",
              "\uff15", "+1", "-0", ".5", "5.", "1e", "e5", "--1", "0.5", "2", "-1", "9" * 400, "\ufeff1", "1\u200b",
              "\x00", "Car", "\ufeffCar", "Car\u200b", "DontCare", "0", "100000000", "100000001"]
ODD_LINES = ["", " ", "\t", "  \t ", "#comment", "Car", "\x0c", "\x00\x00", "Car 0 0 0 1 2 3 4", "\ufeff" + GOOD, GOOD + " 0.9"]
ODD_BYTES = [b"\xff", b"\xfe", b"\xc3", b"\xe9", b"\x80", b"\xc2\x85", b"\x0c", b"\x0b", b"\x1c", b"\x00", b"\r", b"\n",
             b"\t", b" ", BOM, "\u2028".encode(), b"\xed\xa0\x80"]


def mutate_kitti(data) -> tuple[bytes, list[str]]:
    "A KITTI file, valid at first, after random line, field and byte edits; and the kinds of edit made."
    rnd = data.draw(st.randoms(use_true_random=True), label="dice")  # fair odds: hypothesis favours 0 and max
    lines = data.draw(st.lists(kitti_line(), max_size=6), label="lines")
    kinds = []
    for _ in range(rnd.choice([0, 1, 1, 2, 2, 3, 4])):
        op = data.draw(st.sampled_from(["replace field", "delete field", "insert field", "swap corners", "empty box",
                                        "add score", "delete line", "duplicate line", "insert line", "swap lines",
                                        "odd class"]), label="op")
        kinds.append(op)
        if op in ("delete line", "duplicate line", "swap lines") and not lines: continue
        if op == "insert line":
            lines.insert(data.draw(st.integers(0, len(lines))), data.draw(
                st.sampled_from(ODD_LINES) | st.text(max_size=12), label="line").split(" "))
            continue
        i = data.draw(st.integers(0, len(lines) - 1)) if lines else None
        if i is None: continue
        t = lines[i]
        if op == "replace field" and t:
            t[data.draw(st.integers(0, len(t) - 1))] = data.draw(st.sampled_from(ODD_TOKENS) | st.text(max_size=6), label="token")
        elif op == "delete field" and t: del t[data.draw(st.integers(0, len(t) - 1))]
        elif op == "insert field": t.insert(data.draw(st.integers(0, len(t))), data.draw(st.sampled_from(ODD_TOKENS), label="token"))
        elif op == "swap corners" and len(t) >= 8:
            a = data.draw(st.sampled_from([4, 5])); t[a], t[a + 2] = t[a + 2], t[a]
        elif op == "empty box" and len(t) >= 8:
            a = data.draw(st.sampled_from([4, 5])); t[a + 2] = t[a]
        elif op == "add score": t.append(data.draw(st.sampled_from(["0.5", "1", "nan", "1e39", "x"])))
        elif op == "odd class" and t: t[0] = data.draw(st.sampled_from(["\ufeffCar", "Car\u200b", "Café", "車", "1", "DontCare",
                                                                          "Traffic_Light", "Car\x00", "C\u0301ar"]))
        elif op == "delete line": del lines[i]
        elif op == "duplicate line": lines.insert(i, list(t))
        elif op == "swap lines" and len(lines) > 1: lines[i], lines[i - 1] = lines[i - 1], lines[i]
    sep = rnd.choice([" ", " ", " ", "\t", "  ", " \t"])
    ending = rnd.choice(["\n", "\n", "\r\n", "\r", "mixed"])
    if ending != "\n": kinds.append(f"line end {ending!r}")
    trailing = rnd.choice(["", "", "", " ", "\t", " \t "])
    if trailing: kinds.append("trailing whitespace")
    if sep != " ": kinds.append("tab/space separators")
    out = ""
    for t in lines:
        end = rnd.choice(["\n", "\r\n", "\r"]) if ending == "mixed" else ending
        out += sep.join(t) + trailing + end
    if rnd.random() < 0.3 and out: out = out.rstrip("\r\n")
    raw = out.encode("utf-8", "surrogatepass")
    if rnd.random() < 0.15: raw = BOM + raw; kinds.append("BOM")
    for _ in range(rnd.choice([0, 0, 0, 0, 1, 1, 2])):
        pos = data.draw(st.integers(0, len(raw)), label="pos")
        b = data.draw(st.sampled_from(ODD_BYTES), label="byte")
        raw = raw[:pos] + b + raw[pos:]; kinds.append("odd byte")
    if raw and rnd.random() < 0.08:
        raw = raw[:rnd.randrange(len(raw))]; kinds.append("cut off")
    if rnd.random() < 0.02:
        raw = raw.decode("utf-8", "replace").encode("utf-16"); kinds.append("UTF-16")
    if not lines: kinds.append("empty file")
    return raw, kinds


def expected_kitti(raw: bytes):
    """What a label file must give: ("error", line) for the first bad line, or ("ok", None).

    The rules: UTF-8 (a leading BOM allowed); lines end at \\r\\n, \\r or \\n; blank lines are ignored; a line has
    15 or 16 whitespace-separated fields, all lines alike; the class is printable text; the other fields are numbers
    as Python's float() reads them (TAO reads them so) that stay finite as float32; occluded is an integer.
    """
    data = raw[len(BOM):] if raw.startswith(BOM) else raw
    try: text = data.decode("utf-8")
    except UnicodeDecodeError as e: return "error", len(re.findall(rb"\r\n|\r|\n", data[:e.start])) + 1
    n = None
    for no, line in enumerate(universal_lines(text), 1):
        t = line.split()
        if not t: continue
        if len(t) not in (15, 16) or (n is not None and len(t) != n) or not t[0].isprintable(): return "error", no
        n = len(t)
        try: v = [float(x) for x in t[1:]]
        except ValueError: return "error", no
        with np.errstate(over="ignore"):
            if not np.isfinite(np.array(v, np.float32)).all(): return "error", no
        if not float(v[1]).is_integer() or not -2 ** 63 <= v[1] < 2 ** 63: return "error", no
    return "ok", None


def kitti_fuzz_case(data, path: Path, stats: FuzzStats):
    raw, kinds = mutate_kitti(data)
    path.write_bytes(raw)
    want, line = expected_kitti(raw)
    failure, outcome = None, "error"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ann, skipped = read_kitti_label(path)
        outcome = "skip" if skipped else "ok"
        if want == "error": failure = f"read without error; line {line} is bad"
        else:
            try: check_against_text(ann, skipped, raw)
            except AssertionError as e: failure = f"objects differ from the file: {str(e)[:300]}"
    except KittiLabelError as e:
        if want == "ok": failure = f"error on a valid file: {e}"
        elif not str(e).startswith(f"{path}:{line}: "):
            m = re.match(rf"{re.escape(str(path))}:(\d+): ", str(e))
            failure = (f"error names line {m[1]}, not line {line}" if m else "error names no line") + f": {str(e)[:300]}"
        elif len(str(e)) > 600: failure = f"error message of {len(str(e))} characters"
    except Exception as e:  # noqa: BLE001 - counted: any other exception is a failure
        failure = f"{type(e).__name__}: {str(e)[:300]}"
    stats.add(kinds + ["ALL"], outcome, failure, raw)


def run_fuzz(case, n: int, name: str, capsys, *args) -> FuzzStats:
    "Run `case` on n generated inputs; the counts are printed (past pytest's capture) and returned."
    stats = FuzzStats(name)

    @settings(max_examples=n, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(st.data())
    def prop(data): case(data, *args, stats)
    prop()
    with capsys.disabled(): print("\n" + stats.report())
    return stats


def check_kitti_fuzz(stats: FuzzStats, n: int):
    total = stats.per_kind["ALL"]
    assert stats.cases >= n
    # the fuzzer reaches every outcome, so it cannot pass by testing nothing
    assert min(total["ok"], total["skip"], total["error"]) > 0, stats.report()
    stats.check()


def test_fuzzed_kitti_files_read_exactly_or_fail_naming_the_line(tmp_path, capsys):
    stats = run_fuzz(kitti_fuzz_case, 400, "KITTI label fuzz (fast)", capsys, tmp_path / "000042.txt")
    check_kitti_fuzz(stats, 400)


@pytest.mark.slow
def test_fuzzed_kitti_files_many(tmp_path, capsys):
    stats = run_fuzz(kitti_fuzz_case, 6000, "KITTI label fuzz (slow)", capsys, tmp_path / "000042.txt")
    check_kitti_fuzz(stats, 6000)


# --- COCO: what tests/test_data_coco.py does not cover ------------------------------------------------------------------

def coco_base():
    return {"images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 24},
                       {"id": 2, "file_name": "sub/b.png", "width": 32, "height": 24},
                       {"id": 3, "file_name": "c.png", "width": 32, "height": 24}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 5], "iscrowd": 0},
                            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0.5, 0.25, 4, 4]},
                            {"id": 3, "image_id": 1, "category_id": 2, "bbox": [3, 3, 6, 6], "iscrowd": 1},
                            {"id": 4, "image_id": 1, "category_id": 1, "bbox": [3, 3, 0, 6]},
                            {"id": 5, "image_id": 3, "category_id": 1, "bbox": [-4, -2, 8, 30.5]}],
            "categories": [{"id": 1, "name": "Traffic Light"}, {"id": 2, "name": "person"}]}


@pytest.fixture(scope="module")
def coco_images(tmp_path_factory):
    d = tmp_path_factory.mktemp("coco_images")
    for name in ("a.png", "sub/b.png", "c.png"):
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 24), (40, 90, 160)).save(d / name)
    (d / "folder.png").mkdir()
    return d


def doc_edit(fn):
    d = coco_base(); fn(d); return d


def with_duplicate_key(text: str, key: str, value: str, nth: int = 0) -> str:
    "JSON text where the nth object holding `key` has it a second time, with `value`."
    starts = [m.start() for m in re.finditer(f'"{key}": ', text)]
    return text[:starts[nth]] + f'"{key}": {value}, ' + text[starts[nth]:]


COCO_CASES = {
    # name: (JSON text, None when it reads, else text in the CocoError)
    "byte order mark": (lambda: "\ufeff" + json.dumps(coco_base()), None),
    "windows line ends and tabs": (lambda: json.dumps(coco_base(), indent="\t").replace("\n", "\r\n") + "\r\n", None),
    "duplicate key, top level": (lambda: json.dumps(coco_base())[:-1] + ', "annotations": []}',
                                 "the key 'annotations' appears twice"),
    "duplicate bbox key": (lambda: with_duplicate_key(json.dumps(coco_base()), "bbox", "[0, 0, 30, 20]", 1),
                           "the key 'bbox' appears twice"),
    "duplicate file_name key": (lambda: with_duplicate_key(json.dumps(coco_base()), "file_name", '"c.png"'),
                                "the key 'file_name' appears twice in the object with id 1, as 'c.png' "
                                "and 'a.png'"),
    "not UTF-8": (lambda: json.dumps(coco_base(), indent=1).replace("person", "caf\udce9"), "not UTF-8 text (byte 943, line 88)"),
    "two images, one file": (lambda: json.dumps(doc_edit(lambda d: d["images"][2].update(file_name="a.png"))),
                             "images[2] (id 3): file_name 'a.png' is also the file of images[0] (id 1), with another "
                             "size or other annotations"),
    "an image listed twice as an exact copy (TAO's shard padding)": (lambda: json.dumps(doc_edit(lambda d: (
        d["images"].append({**d["images"][1], "id": 9}),
        d["annotations"].append({**d["annotations"][1], "id": 9, "image_id": 9})))), None),
    "duplicate key, same value": (lambda: with_duplicate_key(json.dumps(coco_base()), "iscrowd", "0"), None),
    "two images, one file by another name": (
        lambda: json.dumps(doc_edit(lambda d: d["images"][2].update(file_name="./sub//b.png"))),
        "file_name './sub//b.png' is also the file of images[1] (id 2)"),
    "width 2**70": (lambda: json.dumps(doc_edit(lambda d: d["images"][0].update(width=2 ** 70))),
                    "width is 1180591620717411303424; the image size is a whole number of pixels > 0, at most 2147483647"),
    "height 1e300": (lambda: json.dumps(doc_edit(lambda d: d["images"][1].update(height=1e300))), "height is 1e+300"),
    "height 2**31": (lambda: json.dumps(doc_edit(lambda d: d["images"][1].update(height=2 ** 31))), "height is 2147483648"),
    "file_name a folder": (lambda: json.dumps(doc_edit(lambda d: d["images"][0].update(file_name="folder.png"))),
                           "1 of 3 images are not in"),
    "file_name with trailing space": (lambda: json.dumps(doc_edit(lambda d: d["images"][0].update(file_name="a.png "))),
                                      "1 of 3 images are not in"),
    "file_name through a parent folder": (
        lambda: json.dumps(doc_edit(lambda d: d["images"][0].update(file_name="sub/../a.png"))), "climbs out"),
    "bbox 1e308 width": (lambda: json.dumps(doc_edit(lambda d: d["annotations"][0].update(bbox=[1, 2, 1e308, 5]))),
                         "a bbox is 4 finite numbers"),
    "annotation of a missing image": (lambda: json.dumps(doc_edit(lambda d: d["annotations"][0].update(image_id=4))),
                                      "image_id 4 is not the id of an entry of 'images'"),
}


@pytest.mark.parametrize("case", list(COCO_CASES))
def test_coco_corpus(case, tmp_path, coco_images):
    make, expected = COCO_CASES[case]
    path = tmp_path / "ann.json"
    path.write_bytes(make().encode("utf-8", "surrogateescape"))
    if expected is None:
        check_coco_read(read_coco(path, coco_images), path.read_bytes())
        return
    with pytest.raises(CocoError) as e:
        read_coco(path, coco_images)
    assert str(e.value).startswith(f"{path}: ") and expected in str(e.value) and len(str(e.value)) < 1000, str(e.value)


class DuplicateKey(Exception): pass


def strict_json(raw: bytes):
    "The document, parsed with a key given twice with different values refused (json.loads keeps the last silently)."
    def pairs(kv):
        for k in {k for k, _ in kv}:
            values = [v for key, v in kv if key == k]
            if any(v != values[0] for v in values): raise DuplicateKey(k, kv)
        return dict(kv)
    return json.loads(raw.decode("utf-8-sig"), object_pairs_hook=pairs)


def check_coco_read(ds, raw: bytes):
    """A COCO file that read: every image and annotation of the file is there, each kept box is exactly its bbox."""
    from tao_nb.boxes import xywh_to_xyxy
    doc = strict_json(raw)  # raises DuplicateKey when the reader kept one of two values of a key
    cats = {c["id"]: coco_class_name(c["name"]) for c in doc["categories"]}
    assert [im.id for im in ds] == [im["id"] for im in doc["images"]]
    copies = defaultdict(set)  # an image may be listed twice only as an exact copy (TAO's shard padding)
    for im in doc["images"]:
        objects = sorted(json.dumps([a["category_id"], [float(v) for v in a["bbox"]], int(a.get("iscrowd", 0))])
                         for a in doc["annotations"] if a["image_id"] == im["id"])
        copies[str(Path(im["file_name"]))].add(json.dumps([float(im["width"]), float(im["height"]), objects]))
    assert all(len(v) == 1 for v in copies.values()), f"an image listed twice with different objects: {dict(copies)}"
    skipped = {s.line for s in ds.skipped}
    for entry, im in zip(doc["images"], ds):
        assert 1 <= im.width <= 2 ** 31 - 1 and 1 <= im.height <= 2 ** 31 - 1 and im.file_name == entry["file_name"]
        anns = [a for a in doc["annotations"] if a["image_id"] == entry["id"]]
        kept = [a for a in anns if a["id"] not in skipped]
        for a in anns:
            box = xywh_to_xyxy(np.array(a["bbox"], np.float64))
            assert np.isfinite(box).all()
            assert (a["id"] in skipped) == (a.get("iscrowd", 0) == 1 or not (box[0] < box[2] and box[1] < box[3]))
        b = im.annotations.boxes
        assert im.annotations.classes == [cats[a["category_id"]] for a in kept]
        np.testing.assert_array_equal(b, xywh_to_xyxy(np.array([a["bbox"] for a in kept], np.float64).reshape(-1, 4)))
    assert sum(len(im.annotations) for im in ds) + len(ds.skipped) == len(doc["annotations"])


NUMBER_SWAPS = ["NaN", "Infinity", "-Infinity", "1e400", "-0", "1e39", "3e38", "0", "-5", "2.5", "1e20", "4",
                "9223372036854775808", "2147483648", "true", "null", '"1"', "[]", "{}", "1.0", "99"]
STRING_SWAPS = ['"a.png"', '"./a.png"', '"sub//b.png"', '"../a.png"', '"/etc/passwd"', '""', '"A.PNG"', '"c.png"',
                "null", '"car"', '"folder.png"', '"sub\\\\b.png"', "7", '"\\u0000"']
TEXT_BITS = ['"', ",", "{", "}", "[", "]", ":", "0", "-", "e", " ", "\n", "NaN", '"id": 1, ', '"bbox": [0, 0, 1, 1], ']


def mutate_coco(data) -> tuple[bytes, list[str]]:
    "A COCO file, valid at first, after random structural, token and byte edits; and the kinds of edit made."
    rnd = data.draw(st.randoms(use_true_random=True), label="dice")  # fair odds: hypothesis favours 0 and max
    doc, kinds = coco_base(), []
    if rnd.random() < 0.25:
        op = data.draw(st.sampled_from(["copy image, new id", "copy image, same id", "copy annotation, new id",
                                        "copy annotation, same id", "drop images", "drop a category",
                                        "copy image with its annotations"]))
        kinds.append(op)
        if op == "copy image with its annotations":  # a valid repeat, as TAO's shard padding writes
            im = copy.deepcopy(data.draw(st.sampled_from(doc["images"])))
            doc["annotations"] += [{**a, "id": 20 + k, "image_id": 10} for k, a in enumerate(doc["annotations"])
                                   if a["image_id"] == im["id"]]
            im["id"] = 10; doc["images"].append(im)
        elif op.startswith("copy image"):
            im = copy.deepcopy(data.draw(st.sampled_from(doc["images"])))
            if op.endswith("new id"): im["id"] = 10
            doc["images"].append(im)
        elif op.startswith("copy annotation"):
            a = copy.deepcopy(data.draw(st.sampled_from(doc["annotations"])))
            if op.endswith("new id"): a["id"] = 10
            doc["annotations"].append(a)
        elif op == "drop images": doc["images"] = doc["images"][:1]
        else: doc["categories"] = doc["categories"][:1]
    text = json.dumps(doc, indent=data.draw(st.sampled_from([None, 1, "\t"]), label="indent"))
    for _ in range(rnd.choice([0, 1, 1, 1, 2, 3])):
        op = data.draw(st.sampled_from(["number", "string", "delete span", "insert", "duplicate line", "duplicate key"]))
        kinds.append(op)
        if op == "number" and (ms := list(re.finditer(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text))):
            m = data.draw(st.sampled_from(ms))
            text = text[:m.start()] + data.draw(st.sampled_from(NUMBER_SWAPS)) + text[m.end():]
        elif op == "string" and (ms := list(re.finditer(r'(?<=: )"[^"]*"', text))):
            m = data.draw(st.sampled_from(ms))
            text = text[:m.start()] + data.draw(st.sampled_from(STRING_SWAPS)) + text[m.end():]
        elif op == "delete span" and text:
            i = data.draw(st.integers(0, len(text) - 1))
            text = text[:i] + text[i + data.draw(st.integers(1, 12)):]
        elif op == "insert":
            i = data.draw(st.integers(0, len(text)))
            text = text[:i] + data.draw(st.sampled_from(TEXT_BITS)) + text[i:]
        elif op == "duplicate line" and "\n" in text:
            lines = text.split("\n"); i = data.draw(st.integers(0, len(lines) - 1))
            text = "\n".join(lines[:i + 1] + lines[i:])
        elif op == "duplicate key" and (ms := list(re.finditer(r'"(\w+)": ([^,{}\[\]]+|\[[^\[\]]*\])(?=[,}])', text))):
            m = data.draw(st.sampled_from(ms))
            text = text[:m.start()] + m.group(0) + ", " + text[m.start():]
    if rnd.random() < 0.15: text = text.replace("\n", "\r\n"); kinds.append("CRLF")
    raw = text.encode()
    if rnd.random() < 0.15: raw = BOM + raw; kinds.append("BOM")
    if rnd.random() < 0.1:
        i = rnd.randint(0, len(raw))
        raw = raw[:i] + rnd.choice(ODD_BYTES) + raw[i:]; kinds.append("odd byte")
    if rnd.random() < 0.06:
        raw = raw[:rnd.randint(0, len(raw))]; kinds.append("cut off")
    return raw, kinds


def coco_fuzz_case(data, path: Path, image_dir: Path, stats: FuzzStats):
    raw, kinds = mutate_coco(data)
    path.write_bytes(raw)
    failure, outcome = None, "error"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            ds = read_coco(path, image_dir)
        outcome = "skip" if ds.skipped else "ok"
        try: check_coco_read(ds, raw)
        except DuplicateKey as e: failure = f"read although a key appears twice: {e}"
        except (AssertionError, KeyError, TypeError) as e: failure = f"read, but not as the file says: {type(e).__name__} {str(e)[:300]}"
    except CocoError as e:
        if not str(e).startswith(f"{path}: ") or len(str(e)) >= 1000: failure = f"unclear error: {str(e)[:300]}"
    except Exception as e:  # noqa: BLE001 - counted: any other exception is a failure
        failure = f"{type(e).__name__}: {str(e)[:300]}"
    stats.add(kinds + ["ALL"], outcome, failure, raw)


def test_fuzzed_coco_files_read_exactly_or_fail_clearly(tmp_path, coco_images, capsys):
    stats = run_fuzz(coco_fuzz_case, 300, "COCO file fuzz (fast)", capsys, tmp_path / "ann.json", coco_images)
    assert stats.cases >= 300 and stats.per_kind["ALL"]["ok"] + stats.per_kind["ALL"]["skip"] > 0
    assert stats.per_kind["ALL"]["error"] > 0
    stats.check()


@pytest.mark.slow
def test_fuzzed_coco_files_many(tmp_path, coco_images, capsys):
    stats = run_fuzz(coco_fuzz_case, 4000, "COCO file fuzz (slow)", capsys, tmp_path / "ann.json", coco_images)
    assert stats.cases >= 4000
    stats.check()


# --- through dataset_convert: the records hold exactly the valid objects ----------------------------------------------

def read_records(files):
    "frame id -> (class names, class ids, normalised boxes) of the written examples."
    from tao_nb.data.tfrecords import parse_example, tf
    out = {}
    for p in tf.data.TFRecordDataset(files).map(parse_example):
        out[p["frame_id"].numpy().decode()] = ([c.decode() for c in p["class_names"].numpy()],
                                               p["class_ids"].numpy().tolist(), p["boxes"].numpy())
    return out


def normalised(boxes, w, h):
    "Boxes as the records store them: float32 pixels divided by the float32 image size."
    return np.array(boxes, np.float32).reshape(-1, 4) / np.array([w, h, w, h], np.float32)


@pytest.fixture
def kitti_root(tmp_path):
    from tao_nb.data.sample import make_sample_dataset, sample_convert_spec
    make_sample_dataset(tmp_path / "data", n_train=3, n_val=1, image_size=(128, 128))
    (tmp_path / "convert.txt").write_text(sample_convert_spec(tmp_path / "data", num_shards=1))
    return tmp_path / "data" / "training", tmp_path / "convert.txt"


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_convert_kitti_writes_exactly_the_valid_objects(kitti_root, tmp_path, caplog):
    from tao_nb.data.convert import dataset_convert
    root, spec = kitti_root
    lbl = root / "label_2"
    (lbl / "000000.txt").write_bytes(BOM + (
        line_with(type="Car", x1="10.5", y1="20.25", x2="60", y2="70") + "\t \r\n\r\n  \r\n"
        + line_with(type="Van", x1="40", y1="30", x2="20", y2="50") + "\r\n"  # inverted: skipped and listed
        + line_with(type="Truck", x1="1", y1="1", x2="9", y2="9") + "\r\n"  # not in the mapping: left out, counted
        + line_with(type="pedestrian", x1="100", y1="5.5", x2="127.9", y2="126") + "\r\n").encode())
    (lbl / "000001.txt").write_text("")
    (lbl / "000002.txt").write_text(line_with(type="DontCare", x1="-10", y1="-5", x2="200", y2="300") + "\n\n"
                                    + line_with(type="Cyclist", x1="-5", y1="-3", x2="20", y2="40") + "\n")
    (lbl / "999999.txt").write_text(GOOD)  # a label without an image: ignored with a warning
    s = dataset_convert(spec, tmp_path / "out" / "k")
    assert "1 label files have no image" in caplog.text and "999999.txt" in caplog.text
    recs = read_records(s.shards)
    ids = s.class_ids
    assert sorted(recs) == ["image_2/000000", "image_2/000001", "image_2/000002"]
    expected = {"image_2/000000": (["car", "pedestrian"], [[10.5, 20.25, 60, 70], [100, 5.5, 127.9, 126]]),
                "image_2/000001": ([], []),
                "image_2/000002": (["cyclist"], [[-5, -3, 20, 40]])}  # outside the image: kept as written, as TAO
    for frame, (classes, boxes) in expected.items():
        names, cls, got = recs[frame]
        assert names == classes and cls == [float(ids[c]) for c in classes]
        np.testing.assert_array_equal(got, normalised(boxes, 128, 128))
    assert [(Path(x.file).name, x.line, x.class_name) for x in s.skipped] == [("000000.txt", 4, "Van")]
    assert json.loads(Path(s.warning_file).read_text()) == {f"{lbl / '000000.txt'}_4": [40, 30, 20, 50]}
    stats = json.loads(Path(s.stats_file).read_text())
    assert stats["unmapped_objects"] == {"dontcare": 1, "truck": 1} and stats["skipped_objects"] == 1
    assert stats["total_objects"] == {"car": 1, "cyclist": 1, "pedestrian": 1}


BAD_KITTI = {
    "1e308 box corner": (lambda lbl: (lbl / "000001.txt").write_text(line_with(x2="1e308")), "000001.txt:1: field 7 (x2)"),
    "NaN": (lambda lbl: (lbl / "000002.txt").write_text(GOOD + "\n" + line_with(y1="nan")), "000002.txt:2: field 6 (y1)"),
    "14 fields": (lambda lbl: (lbl / "000000.txt").write_text(" ".join(GOOD.split()[:14])), "000000.txt:1: 14 fields"),
    "invalid byte": (lambda lbl: (lbl / "000001.txt").write_bytes(GOOD.encode() + b"\n\xff"), "000001.txt:2: byte 83"),
    "label a folder": (lambda lbl: ((lbl / "000001.txt").unlink(), (lbl / "000001.txt").mkdir()),
                       "000001.png (expected"),
    "label missing": (lambda lbl: (lbl / "000002.txt").unlink(), "1 of 3 images in"),
}


@pytest.mark.parametrize("case", list(BAD_KITTI))
def test_convert_kitti_bad_label_is_a_clear_error_and_keeps_the_previous_records(case, kitti_root, tmp_path):
    from tao_nb.data.convert import dataset_convert
    root, spec = kitti_root
    dataset_convert(spec, tmp_path / "out" / "k")
    before = snapshot(tmp_path / "out")
    damage, expected = BAD_KITTI[case]
    damage(root / "label_2")
    with pytest.raises(TaoNbError) as e:
        dataset_convert(spec, tmp_path / "out" / "k")
    assert expected in str(e.value) and str(root / "label_2") in str(e.value), str(e.value)
    assert snapshot(tmp_path / "out") == before  # nothing already written is lost


def coco_spec(root: Path) -> str:
    return (f'coco_config {{ root_directory_path: "{root}" img_dir_names: "images" annotation_files: "ann.json" '
            'num_partitions: 1 num_shards: [1] }\n'
            'target_class_mapping { key: "trafficlight" value: "light" }\n'
            'target_class_mapping { key: "person" value: "person" }\n')


def test_convert_coco_writes_exactly_the_valid_objects_and_refuses_bad_files(tmp_path, coco_images):
    from tao_nb.data.convert import dataset_convert
    from tao_nb.spec import spec_from_text
    root = tmp_path / "coco"
    root.mkdir()
    (root / "images").symlink_to(coco_images, target_is_directory=True)
    (root / "ann.json").write_text(json.dumps(coco_base()))
    spec = spec_from_text(coco_spec(root))
    s = dataset_convert(spec, tmp_path / "out" / "c")
    recs = read_records(s.shards)
    expected = {"images/a": (["trafficlight"], [[1, 2, 11, 7]]),  # the crowd and the empty box are left out
                "images/sub/b": (["person"], [[0.5, 0.25, 4.5, 4.25]]),
                "images/c": (["trafficlight"], [[-4, -2, 4, 28.5]])}
    assert sorted(recs) == sorted(expected)
    for frame, (classes, boxes) in expected.items():
        names, cls, got = recs[frame]
        assert names == classes and cls == [float(s.class_ids[c]) for c in classes]
        np.testing.assert_array_equal(got, normalised(boxes, 32, 24))
    assert sorted((x.line, x.reason) for x in s.skipped) == [(3, "iscrowd=1"), (4, "width or height <= 0")]
    before = snapshot(tmp_path / "out")
    for name in ("two images, one file", "width 2**70", "duplicate key, top level", "annotation of a missing image"):
        make, expected_text = COCO_CASES[name]
        (root / "ann.json").write_text(make())
        with pytest.raises(CocoError) as e:
            dataset_convert(spec, tmp_path / "out" / "c")
        assert str(e.value).startswith(f"{root / 'ann.json'}: ") and expected_text in str(e.value), (name, str(e.value))
        assert snapshot(tmp_path / "out") == before, name
