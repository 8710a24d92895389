"""Bad images through every path that reads them: dataset_convert (KITTI and COCO), the tf.data training input
(TFRecords and KITTI folders), inference on a folder, the dataset summary and inspectors, and offline augment.

Every image is generated here with PIL/numpy, a few pixels wide. Bad images (cut short, empty, not PNG or JPEG,
corrupt, a header claiming 60000x60000 pixels, a folder or a broken link named like an image) must give one clear
error naming each file, before anything is written or trained; odd but valid images (grey, grey+alpha, RGBA,
palette, 16-bit, CMYK, progressive, EXIF-rotated, PNG bytes in a .jpg and back, any size) must go through and
decode to three channels. Labels refer to the stored pixels, whatever the EXIF orientation (as TAO).
"""
import io
import json
import logging
import os
import resource
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from tao_nb.core import TaoNbError
from tao_nb.data.convert import ImageFileError, dataset_convert, image_info, image_to_rgb
from tao_nb.data.kitti import ImageAnnotations, kitti_label_text
from tao_nb.spec import load_spec, spec_from_text

W, H = 24, 16  # the stored size of every generated image unless said otherwise


# --- generated images ------------------------------------------------------------------------------------------------

def pixels(w=W, h=H, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def encode(im, fmt, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(w=60000, h=60000) -> bytes:
    """A well-formed PNG of a few hundred bytes whose header claims w x h RGB pixels (10.8 GB decoded)."""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + png_chunk(b"IEND", b""))


def jpeg_claiming(data: bytes, w: int, h: int) -> bytes:
    """JPEG bytes with the frame header (SOF) patched to claim w x h pixels."""
    i = 2
    while True:
        marker, n = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xC2: return data[:i + 5] + struct.pack(">HH", h, w) + data[i + 9:]
        i += 2 + n


def exif_jpeg(px, orientation=6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(px), "JPEG", exif=exif.tobytes())


RGB = Image.fromarray(pixels())
PNG, JPG = encode(RGB, "PNG"), encode(RGB, "JPEG", quality=90)
PROGRESSIVE = encode(RGB, "JPEG", quality=90, progressive=True)
I16 = Image.fromarray(pixels()[..., 0].astype(np.uint16) * 257)  # 16-bit grey; the high byte is the 8-bit value


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1:]


# name -> (bytes, suffix, what the error must say)
BAD = {
    "cut_png": (PNG[: len(PNG) // 2], ".png", "PNG file cut short"),
    "cut_jpg": (JPG[: len(JPG) // 2], ".jpg", "JPEG file cut short"),
    "png_without_iend": (PNG[:-12], ".png", "it ends before its IEND chunk"),
    "jpg_without_eoi": (JPG[:-2], ".jpg", "it ends before its end-of-image marker"),
    "png_header_only": (PNG[:40], ".png", "PNG file cut short"),
    "jpg_header_only": (JPG[:100], ".jpg", "JPEG file cut short"),
    "empty_png": (b"", ".png", "the file is empty"),
    "empty_jpg": (b"", ".jpg", "the file is empty"),
    "text_named_jpg": (b"this is not an image\n", ".jpg", "its bytes are text ('this is not an image\\n')"),
    "corrupt_png": (flipped(PNG, len(PNG) // 2), ".png", "does not match (damaged bytes)"),
    "bomb_png": (png_bomb(), ".png", "header claims 60000x60000 pixels"),
    "bomb_jpg": (jpeg_claiming(JPG, 60000, 60000), ".jpg", "header claims 60000x60000 pixels"),
    "tiff_named_png": (encode(RGB, "TIFF"), ".png", "its bytes are a TIFF file, not PNG or JPEG"),
    "gif_named_png": (encode(RGB, "GIF"), ".png", "its bytes are a GIF file"),
    "bmp_named_jpg": (encode(RGB, "BMP"), ".jpg", "its bytes are a BMP file"),
    "webp_named_jpg": (encode(RGB, "WEBP"), ".jpg", "its bytes are a WebP file"),
}

# name -> (bytes, suffix, stored (width, height)): valid, if unusual; each must decode to three channels
ODD = {
    "rgb_png": (PNG, ".png", (W, H)),
    "rgb_jpg": (JPG, ".jpg", (W, H)),
    "grey_png": (encode(RGB.convert("L"), "PNG"), ".png", (W, H)),
    "grey_jpg": (encode(RGB.convert("L"), "JPEG"), ".jpg", (W, H)),
    "grey_alpha_png": (encode(RGB.convert("LA"), "PNG"), ".png", (W, H)),
    "rgba_png": (encode(RGB.convert("RGBA"), "PNG"), ".png", (W, H)),
    "palette_png": (encode(RGB.convert("P"), "PNG"), ".png", (W, H)),
    "grey16_png": (encode(I16, "PNG"), ".png", (W, H)),
    "cmyk_jpg": (encode(RGB.convert("CMYK"), "JPEG"), ".jpg", (W, H)),
    "progressive_jpg": (PROGRESSIVE, ".jpg", (W, H)),
    "png_named_jpg": (PNG, ".jpg", (W, H)),
    "jpg_named_png": (JPG, ".png", (W, H)),
    "exif_rotated_jpg": (exif_jpeg(pixels()), ".jpg", (W, H)),  # viewers show it 16x24; stored 24x16
    "tall_strip_png": (encode(Image.fromarray(pixels(3, 97)), "PNG"), ".png", (3, 97)),  # far from the network size
    "jpg_with_trailing_bytes": (JPG + b"\0" * 64, ".jpg", (W, H)),
    "png_with_trailing_bytes": (PNG + b"\0" * 64, ".png", (W, H)),
}
LOSSLESS = [k for k, (data, _, _) in ODD.items() if data.startswith(b"\x89PNG")]
BOX = [1, 1, 3, 4]  # inside every generated image


# --- dataset writers -------------------------------------------------------------------------------------------------

def write_kitti(root: Path, images: dict[str, tuple[bytes, str]], ext: str = ".png") -> Path:
    """A KITTI folder pair: each image (bytes) under its name + `ext`, one car each."""
    (root / "image_2").mkdir(parents=True, exist_ok=True)
    (root / "label_2").mkdir(parents=True, exist_ok=True)
    for name, data in images.items():
        (root / "image_2" / f"{name}{ext}").write_bytes(data)
        (root / "label_2" / f"{name}.txt").write_text(kitti_label_text(ImageAnnotations(name, ["car"], [BOX])))
    return root


def kitti_spec(root: Path, ext=".png"):
    return spec_from_text(
        f'kitti_config {{ root_directory_path: "{root}" image_dir_name: "image_2" label_dir_name: "label_2" '
        f'image_extension: "{ext}" partition_mode: "random" num_partitions: 2 val_split: 0 num_shards: 1 }}\n'
        'target_class_mapping { key: "car" value: "car" }')


def write_coco(root: Path, images: dict[str, tuple[bytes, str, tuple[int, int]]]) -> Path:
    """A COCO image folder and annotation file: file name = name + suffix, the given size in the JSON, one car each."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    entries, anns = [], []
    for k, (name, (data, suffix, (w, h))) in enumerate(images.items(), 1):
        (root / "img" / f"{name}{suffix}").write_bytes(data)
        entries.append({"id": k, "file_name": f"{name}{suffix}", "width": w, "height": h})
        anns.append({"id": k, "image_id": k, "category_id": 1, "bbox": [1, 1, 2, 3], "iscrowd": 0})
    (root / "ann.json").write_text(json.dumps({"images": entries, "annotations": anns,
                                               "categories": [{"id": 1, "name": "car"}]}))
    return root


def coco_spec(root: Path):
    return spec_from_text(f'coco_config {{ root_directory_path: "{root}" img_dir_names: "img" annotation_files: "ann.json" '
                          'num_partitions: 1 num_shards: 1 }\ntarget_class_mapping { key: "car" value: "car" }')


def tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the byte-level check --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BAD)
def test_every_bad_image_is_refused_with_its_reason(name):
    data, suffix, says = BAD[name]
    with pytest.raises(ImageFileError) as e:
        image_info(data, f"{name}{suffix}")
    assert str(e.value).startswith(f"{name}{suffix}: not a readable image: ") and says in str(e.value), str(e.value)


@pytest.mark.parametrize("name", ODD)
def test_every_odd_but_valid_image_passes_and_tensorflow_decodes_it_to_rgb(name):
    from tao_nb.data.pipeline import tf
    data, suffix, (w, h) = ODD[name]
    info = image_info(data, f"{name}{suffix}")
    assert (info.width, info.height) == (w, h)
    assert info.orientation == (6 if name == "exif_rotated_jpg" else 1)
    decoded = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    assert decoded.shape == (h, w, 3)  # the stored pixels: EXIF orientation is not applied, as TAO
    if name in LOSSLESS:  # what the inspectors and augment show is what training sees
        with Image.open(io.BytesIO(data)) as im: assert np.array_equal(np.asarray(image_to_rgb(im)), decoded)


def test_tensorflow_fails_on_every_bad_image_the_check_refuses():
    """The check is not stricter than needed for the cut, empty, corrupt and bomb cases: TensorFlow fails on them."""
    from tao_nb.data.pipeline import tf
    for name in [n for n in BAD if not n.endswith(("named_png", "named_jpg"))]:
        with pytest.raises(tf.errors.InvalidArgumentError):
            tf.io.decode_image(BAD[name][0], channels=3, expand_animations=False)


# --- dataset_convert -------------------------------------------------------------------------------------------------

def test_kitti_convert_lists_every_bad_image_and_keeps_the_previous_result(tmp_path):
    good = {f"good{i}": encode(Image.fromarray(pixels(seed=i)), "PNG") for i in range(2)}
    root = write_kitti(tmp_path / "data", good)
    first = dataset_convert(kitti_spec(root), tmp_path / "out" / "k")
    before = tree(tmp_path / "out")
    write_kitti(root, {name: data for name, (data, _, _) in BAD.items()})  # all named .png: content decides
    with pytest.raises(ImageFileError) as e:
        dataset_convert(kitti_spec(root), tmp_path / "out" / "k")
    msg = str(e.value)
    assert msg.startswith(f"{len(BAD)} of {len(BAD) + 2} images cannot be converted (nothing was written"), msg
    for name, (_, _, says) in BAD.items():
        line = next(l for l in msg.splitlines() if f"{name}.png:" in l)
        assert f"image_2/{name}.png: not a readable image" in line and says in line, line
    assert "good0" not in msg and tree(tmp_path / "out") == before  # the earlier conversion is untouched
    assert first.images == 2


def test_coco_convert_lists_every_bad_image(tmp_path):
    root = write_coco(tmp_path / "coco", {"good": (PNG, ".png", (W, H)),
                                          **{n: (d, s, (W, H)) for n, (d, s, _) in BAD.items()}})
    with pytest.raises(ImageFileError) as e:
        dataset_convert(coco_spec(root), tmp_path / "out" / "c")
    msg = str(e.value)
    assert msg.startswith(f"{len(BAD)} of {len(BAD) + 1} images cannot be converted"), msg
    for name, (_, suffix, says) in BAD.items():
        assert any(f"img/{name}{suffix}: not a readable image" in l and says in l for l in msg.splitlines()), name
    assert not (tmp_path / "out").exists() or not any(p.name.startswith("c-fold") for p in (tmp_path / "out").iterdir())


@pytest.mark.parametrize("source", ["kitti", "coco"])
def test_odd_images_convert_with_stored_sizes_and_decode_to_three_channels(tmp_path, source, caplog):
    from tao_nb.data.pipeline import decode_element, tf, tfrecord_elements
    if source == "kitti":  # KITTI needs one extension: the .jpg ones are stored under .png names
        root = write_kitti(tmp_path / "data", {n: d for n, (d, _, _) in ODD.items()})
        spec, path_of = kitti_spec(root), lambda n: root / "image_2" / f"{n}.png"
    else:
        root = write_coco(tmp_path / "coco", ODD)
        spec, path_of = coco_spec(root), lambda n: root / "img" / f"{n}{ODD[n][1]}"
    with caplog.at_level(logging.WARNING, logger="tao_nb"):
        s = dataset_convert(spec, tmp_path / "out" / "x")
    assert s.images == len(ODD)
    assert s.rotated == [str(path_of("exif_rotated_jpg"))]
    assert "carry an EXIF orientation" in caplog.text and "decoded by their content" in caplog.text
    stored_as_png = lambda n: path_of(n).suffix == ".png"
    want = {n for n, (data, _, _) in ODD.items() if data.startswith(b"\x89PNG") != stored_as_png(n)}
    assert {Path(m.split(" (")[0]).stem for m in s.misnamed} == want
    assert source == "kitti" or want == {"png_named_jpg", "jpg_named_png"}
    from tao_nb.data.tfrecords import parse_example, read_tfrecord_annotations
    seen, sizes = {}, {}
    for el in tfrecord_elements(s.shards, {"car": "car"}).map(decode_element):
        seen[Path(el["frame_id"].numpy().decode()).name] = el["image"].shape
    for parsed in tf.data.TFRecordDataset(s.shards).map(parse_example):
        sizes[Path(parsed["frame_id"].numpy().decode()).name] = (int(parsed["width"]), int(parsed["height"]))
    for name, (_, _, (w, h)) in ODD.items():
        assert seen[name] == (h, w, 3), name
        assert sizes[name] == (w, h), name  # boxes normalised by the stored size (EXIF rotation ignored)
    assert sum(1 for _ in read_tfrecord_annotations(s.shards)) == len(ODD)


def test_coco_size_that_differs_from_the_image_is_refused(tmp_path):
    root = write_coco(tmp_path / "coco", {"wider": (PNG, ".png", (W + 8, H)), "turned": (PNG, ".png", (H, W)),
                                          "right": (PNG, ".png", (W, H))})
    with pytest.raises(ImageFileError) as e:
        dataset_convert(coco_spec(root), tmp_path / "out" / "c")
    msg = str(e.value)
    assert msg.startswith("2 of 3 images cannot be converted")
    assert f"wider.png: the annotation file gives {W + 8}x{H} pixels, the image has {W}x{H}" in msg
    assert f"turned.png: the annotation file gives {H}x{W} pixels" in msg and "width and height swapped" in msg


def test_folder_and_broken_link_named_like_labelled_images(tmp_path):
    root = write_kitti(tmp_path / "data", {"good": PNG})
    (root / "image_2" / "folder.png").mkdir()
    (root / "image_2" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    # unlabelled, they are no part of the dataset: converted without them
    assert dataset_convert(kitti_spec(root), tmp_path / "out" / "k").images == 1
    for name in ("folder", "gone"):
        (root / "label_2" / f"{name}.txt").write_text(kitti_label_text(ImageAnnotations(name, ["car"], [BOX])))
    with pytest.raises(ImageFileError) as e:
        dataset_convert(kitti_spec(root), tmp_path / "out" / "k")
    msg = str(e.value)
    assert "folder.png: not a readable image: it is a folder" in msg
    assert f"gone.png: not a readable image: a broken symbolic link (to {tmp_path / 'nowhere.png'})" in msg
    coco = write_coco(tmp_path / "coco", {"good": (PNG, ".png", (W, H))})
    (coco / "img" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (coco / "img" / "dir.png").mkdir()
    ann = json.loads((coco / "ann.json").read_text())
    ann["images"] += [{"id": 2, "file_name": "gone.png", "width": W, "height": H},
                      {"id": 3, "file_name": "dir.png", "width": W, "height": H}]
    (coco / "ann.json").write_text(json.dumps(ann))
    with pytest.raises(TaoNbError, match="gone.png") as e:
        dataset_convert(coco_spec(coco), tmp_path / "out" / "c")
    assert "gone.png (a broken symbolic link)" in str(e.value) and "dir.png (a folder)" in str(e.value)


def test_bomb_fails_fast_without_allocating(tmp_path):
    root = write_kitti(tmp_path / "data", {"good": PNG, "bomb": png_bomb(), "bomb2": jpeg_claiming(JPG, 60000, 60000)})
    peak, t = peak_rss_mb(), time.perf_counter()
    with pytest.raises(ImageFileError, match="bomb.png: not a readable image: its PNG header claims 60000x60000"):
        dataset_convert(kitti_spec(root), tmp_path / "out" / "k")
    assert time.perf_counter() - t < 5 and peak_rss_mb() - peak < 200


# --- the training input ----------------------------------------------------------------------------------------------

def ssd_dataset_config(sample, **source):
    spec = load_spec(sample("fuzz_images.txt"))
    dc = spec.dataset_config
    del dc.data_sources[1:]
    dc.data_sources[0].Clear()
    for k, v in source.items(): setattr(dc.data_sources[0], k, str(v))
    dc.ClearField("validation_fold")
    dc.target_class_mapping.clear()
    dc.target_class_mapping["car"] = "car"
    return spec


def write_records(path: Path, images: dict[str, tuple[bytes, tuple[int, int]]]):
    """A shard as another tool might write it: no check of the images."""
    from tao_nb.data.tfrecords import annotations_to_example, write_tfrecord
    write_tfrecord(path, [annotations_to_example(ImageAnnotations(n, ["car"], [BOX]), d, w, h, f"img/{n}", [1])
                          .SerializeToString() for n, (d, (w, h)) in images.items()])


def test_bad_records_are_listed_before_training(sample, tmp_path):
    from tao_nb.data.pipeline import detection_data
    write_records(tmp_path / "shard-00000", {"good": (PNG, (W, H)), "cut": (BAD["cut_jpg"][0], (W, H)),
                                              "text": (b"hello", (W, H)), "bomb": (png_bomb(), (60000, 60000)),
                                              "resized": (PNG, (2 * W, H))})
    spec = ssd_dataset_config(sample, tfrecords_path=tmp_path / "shard-*")
    t = time.perf_counter()
    with pytest.raises(ImageFileError) as e:
        detection_data(spec.dataset_config, "train")
    msg = str(e.value)
    assert time.perf_counter() - t < 5
    assert msg.startswith("4 of 5 images in the TFRecords cannot be trained on"), msg
    assert "record 1 (img/cut): not a readable image: JPEG file cut short" in msg
    assert "record 2 (img/text): not a readable image: its bytes are text ('hello')" in msg
    assert "record 3 (img/bomb): not a readable image: its PNG header claims 60000x60000" in msg
    assert f"record 4 (img/resized): frame/width and frame/height are [{2 * W}, {H}], the image has {W}x{H}" in msg


@pytest.mark.parametrize("channels", [3, 1])
def test_odd_images_in_a_shard_train_as_three_channels(sample, tmp_path, channels):
    from tao_nb.data.pipeline import SSDAugmentation, detection_data, train_dataset
    write_records(tmp_path / "shard-00000", {n: (d, size) for n, (d, _, size) in ODD.items()})
    spec = ssd_dataset_config(sample, tfrecords_path=tmp_path / "shard-*")
    spec.augmentation_config.output_channel = channels
    spec.augmentation_config.ClearField("image_mean")
    data = detection_data(spec.dataset_config, "train")
    assert data.size == len(ODD)
    aug = SSDAugmentation.from_spec(spec.augmentation_config)
    for el in train_dataset(data, aug, seed=1).take(len(ODD)):
        assert el["image"].shape == (aug.output_height, aug.output_width, channels)
        assert np.isfinite(el["image"].numpy()).all()


def test_kitti_folder_source_checks_images_before_training(sample, tmp_path):
    from tao_nb.data.pipeline import detection_data
    root = write_kitti(tmp_path / "data", {"good": PNG, "cut": BAD["cut_png"][0], "rgba": ODD["rgba_png"][0]})
    (root / "image_2" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (root / "label_2" / "gone.txt").write_text("")
    spec = ssd_dataset_config(sample, image_directory_path=root / "image_2", label_directory_path=root / "label_2")
    with pytest.raises(ImageFileError) as e:
        detection_data(spec.dataset_config, "train")
    msg = str(e.value)
    assert msg.startswith("2 of 4 images cannot be trained on"), msg
    assert "cut.png: not a readable image: PNG file cut short" in msg and "gone.png" in msg and "rgba" not in msg


# --- inference on a folder -------------------------------------------------------------------------------------------

def test_inference_skips_and_lists_bad_images(untrained, tmp_path):
    from tao_nb.evaluate import inference
    model, spec = untrained
    folder = tmp_path / "images"
    folder.mkdir()
    good = {"grey.png": ODD["grey_png"][0], "rgba.png": ODD["rgba_png"][0], "g16.png": ODD["grey16_png"][0],
            "cmyk.jpg": ODD["cmyk_jpg"][0], "turned.jpg": ODD["exif_rotated_jpg"][0], "strip.png": ODD["tall_strip_png"][0]}
    bad = {"cut.png": BAD["cut_png"][0], "empty.jpg": b"", "text.jpg": b"hello", "bomb.png": png_bomb()}
    for name, data in {**good, **bad}.items(): (folder / name).write_bytes(data)
    (folder / "dir.jpg").mkdir()
    (folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(folder / "pipe.jpg")  # reading it would wait forever for a writer
    out = inference(model, spec, folder, tmp_path / "annotated", tmp_path / "labels", threshold=1.0)  # no box drawn
    assert sorted(out) == sorted(Path(n).stem for n in good)
    assert sorted(Path(p).name for p in out.skipped) == sorted([*bad, "dir.jpg", "gone.png", "pipe.jpg"])
    assert "cut.png: not a readable image: PNG file cut short" in out.skipped[str(folder / "cut.png")]
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == sorted(f"{Path(n).stem}.txt" for n in good)
    listing = (tmp_path / "annotated" / "skipped_images.txt").read_text()
    assert all(name in listing for name in [*bad, "dir.jpg", "gone.png", "pipe.jpg"])
    assert "pipe.jpg: not a readable image: not a regular file" in listing
    for name in good:  # the annotated copy shows the stored pixels
        with Image.open(tmp_path / "annotated" / name) as im:
            assert im.size == (ODD["tall_strip_png"][2] if name == "strip.png" else (W, H)), name
    with Image.open(tmp_path / "annotated" / "g16.png") as im:  # 16-bit grey drawn from its high byte, not clipped white
        assert np.array_equal(np.asarray(im)[..., 0], pixels()[..., 0])
    for name in bad: (folder / name).unlink()
    (folder / "dir.jpg").rmdir(); (folder / "gone.png").unlink(); (folder / "pipe.jpg").unlink()
    inference(model, spec, folder, tmp_path / "annotated", threshold=0.0)
    assert not (tmp_path / "annotated" / "skipped_images.txt").exists()  # a clean re-run clears the stale list


def test_inference_refuses_an_unreadable_folder_and_frame_id_clashes(untrained, tmp_path):
    from tao_nb.evaluate import inference
    model, spec = untrained
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"")
    (tmp_path / "bad" / "b.jpg").write_bytes(BAD["cut_jpg"][0])
    with pytest.raises(ImageFileError, match=r"2 of 2 images cannot be read; nothing to run on"):
        inference(model, spec, tmp_path / "bad", tmp_path / "out")
    (tmp_path / "clash").mkdir()
    (tmp_path / "clash" / "a.png").write_bytes(PNG)
    (tmp_path / "clash" / "a.jpg").write_bytes(JPG)
    with pytest.raises(TaoNbError, match="a.jpg and a.png"):
        inference(model, spec, tmp_path / "clash", tmp_path / "out", tmp_path / "labels")
    assert not (tmp_path / "labels").exists()


def damaged_jpeg() -> bytes:
    """A JPEG with one flipped bit: its structure is whole (the check passes it), TensorFlow cannot decode it."""
    from tao_nb.data.pipeline import tf
    for at in range(len(JPG) // 2, len(JPG) - 2):
        for bit in range(8):
            data = JPG[:at] + bytes([JPG[at] ^ (1 << bit)]) + JPG[at + 1:]
            try: image_info(data, "x"); tf.io.decode_image(data, channels=3)
            except ImageFileError: continue
            except tf.errors.InvalidArgumentError: return data
    pytest.fail("no damaged JPEG found")


def test_evaluate_names_an_image_whose_data_is_damaged(untrained, tmp_path):
    from tao_nb.evaluate import evaluate
    model, spec_path = untrained
    write_records(tmp_path / "val-00000", {"good": (PNG, (W, H)), "damaged": (damaged_jpeg(), (W, H))})
    spec = load_spec(spec_path)
    spec.dataset_config.validation_data_sources[0].Clear()
    spec.dataset_config.validation_data_sources[0].tfrecords_path = str(tmp_path / "val-*")
    spec.eval_config.visualize_pr_curve = False
    with pytest.raises(ImageFileError) as e:
        evaluate(model, spec, batch_size=1)
    assert str(e.value).startswith("1 of 2 validation images cannot be decoded:\n  img/damaged: not a decodable image")


def test_training_names_an_image_whose_data_is_damaged(sample, tmp_path):
    """The byte check passes the damaged JPEG; TensorFlow fails on it mid-epoch, and training then names it."""
    from tao_nb.train import train
    write_records(tmp_path / "train-00000", {"good": (PNG, (W, H)), "damaged": (damaged_jpeg(), (W, H))})
    spec = load_spec(sample("damaged.txt", num_epochs=1, batch_size=2))
    spec.dataset_config.data_sources[0].Clear()
    spec.dataset_config.data_sources[0].tfrecords_path = str(tmp_path / "train-*")
    with pytest.raises(ImageFileError) as e:
        train(spec, tmp_path / "results", verbose=0)
    assert str(e.value).startswith("1 of 2 training images cannot be decoded:\n  img/damaged: not a decodable image"), str(e.value)


def test_calibration_names_unreadable_images(untrained, tmp_path):
    from tao_nb.export import calibration_batches
    _, spec = untrained
    folder = tmp_path / "cal"; folder.mkdir()
    for name, data in {"a.png": PNG, "b.jpg": JPG, "cut.jpg": BAD["cut_jpg"][0], "damaged.jpg": damaged_jpeg()}.items():
        (folder / name).write_bytes(data)
    with pytest.raises(ImageFileError) as e:
        calibration_batches(folder, spec, batches=1, batch_size=4)
    msg = str(e.value)
    assert msg.startswith("2 of 4 calibration images cannot be read"), msg
    assert "cut.jpg: not a readable image: JPEG file cut short" in msg and "damaged.jpg: not a decodable image" in msg
    (folder / "cut.jpg").unlink(); (folder / "damaged.jpg").unlink()
    assert calibration_batches(folder, spec, batches=1, batch_size=2).shape[:2] == (1, 2)


# --- summary and inspectors ------------------------------------------------------------------------------------------

def test_summary_flags_unreadable_images_and_inspectors_name_the_file(tmp_path):
    from tao_nb.data.inspect import open_kitti, summarize_dataset
    images = {"good": PNG, "empty": b"", "text": b"hello", "bomb": png_bomb(), "cut": BAD["cut_png"][0],
              **{n: ODD[n][0] for n in ("grey_png", "rgba_png", "palette_png", "grey16_png", "exif_rotated_jpg")}}
    root = write_kitti(tmp_path / "data", images)
    ds = open_kitti(root / "image_2", root / "label_2")
    s = summarize_dataset(ds, {"car": "car"})
    unreadable = [p for p in s.problems if p.kind == "unreadable_image"]
    assert len(unreadable) == 1 and sorted(unreadable[0].frame_ids) == ["bomb", "empty", "text"]
    assert sum(s.image_sizes.values()) == len(images) - 3
    index = {ds.frame_id(i): i for i in range(len(ds))}
    with pytest.raises(TaoNbError, match="cut.png: cannot read the image"):
        ds.image(index["cut"])
    t = time.perf_counter()
    with pytest.raises(TaoNbError, match="bomb.png: cannot read the image"):
        ds.image(index["bomb"])
    assert time.perf_counter() - t < 2
    for name in ("grey_png", "rgba_png", "palette_png", "grey16_png", "exif_rotated_jpg"):
        px = ds.image(index[name])
        assert px.shape == (H, W, 3) and px.dtype == np.uint8, name  # stored pixels, three channels
    assert np.array_equal(ds.image(index["grey16_png"])[..., 0], pixels()[..., 0])  # not clipped to white


def test_tfrecord_inspector_on_odd_and_bad_records(tmp_path):
    from tao_nb.data.inspect import open_tfrecords, summarize_dataset
    write_records(tmp_path / "s-fold-000-of-001-shard-00000-of-00001",
                  {"grey16": (ODD["grey16_png"][0], (W, H)), "cut": (BAD["cut_png"][0], (W, H))})
    ds = open_tfrecords(str(tmp_path / "s-*"))
    assert np.array_equal(ds.image(0)[..., 1], pixels()[..., 0])
    with pytest.raises(TaoNbError, match="cannot read the image"):
        ds.image(1)
    assert summarize_dataset(ds).num_images == 2


# --- offline augment -------------------------------------------------------------------------------------------------

AUGMENT = 'dataset_config { image_path: "images" label_path: "labels" }\n' \
          'spatial_config { flip_config { flip_horizontal: true probability: 1.0 } }\n'


def test_augment_lists_bad_images_before_writing_anything(tmp_path):
    from tao_nb.data.augment import augment_dataset
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    images = {"good": PNG, "cut": BAD["cut_png"][0], "empty": b"", "text": b"hi", "bomb": png_bomb(),
              "corrupt": BAD["corrupt_png"][0]}
    for name, data in images.items():
        (root / "images" / f"{name}.png").write_bytes(data)
        (root / "labels" / f"{name}.txt").write_text(kitti_label_text(ImageAnnotations(name, ["car"], [BOX])))
    (root / "images" / "dir.png").mkdir()
    (root / "labels" / "dir.txt").write_text("")
    with pytest.raises(ImageFileError) as e:
        augment_dataset(spec_from_text(AUGMENT), tmp_path / "out", root)
    msg = str(e.value)
    assert msg.startswith("6 of 7 images cannot be augmented (nothing was written"), msg
    for name in ("cut", "empty", "text", "bomb", "corrupt", "dir"): assert f"{name}.png: not a readable image" in msg
    assert not (tmp_path / "out").exists()


def test_augment_reads_odd_images_as_training_does(tmp_path):
    from tao_nb.data.augment import augment_dataset
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    odd = ("grey_png", "grey_alpha_png", "rgba_png", "palette_png", "grey16_png", "cmyk_jpg", "jpg_named_png",
           "exif_rotated_jpg")
    for name in odd:
        (root / "images" / f"{name}.png").write_bytes(ODD[name][0])
        (root / "labels" / f"{name}.txt").write_text(kitti_label_text(ImageAnnotations(name, ["car"], [BOX])))
    s = augment_dataset(spec_from_text(AUGMENT), tmp_path / "out", root)
    assert s.images_written == len(odd)
    for name in odd:
        with Image.open(tmp_path / "out" / "images" / f"{name}.png") as im: assert im.size == (W, H) and im.mode == "RGB"
    with Image.open(tmp_path / "out" / "images" / "grey16_png.png") as im:  # flipped, high byte kept
        assert np.array_equal(np.asarray(im)[..., 0], pixels()[:, ::-1, 0])


# --- fuzzing ---------------------------------------------------------------------------------------------------------

SOURCES = {"png": PNG, "jpg": JPG, "progressive": PROGRESSIVE, "exif": ODD["exif_rotated_jpg"][0],
           "palette": ODD["palette_png"][0], "cmyk": ODD["cmyk_jpg"][0]}


def check_cut(source: str, at: int):
    """A file cut at any byte is refused with an ImageFileError, or, when accepted, decodes."""
    from tao_nb.data.pipeline import tf
    data = SOURCES[source][:at]
    try: info = image_info(data, "cut")
    except ImageFileError as e:
        assert str(e).startswith("cut: not a readable image: ")
        return
    tf.io.decode_image(data, channels=3, expand_animations=False)  # raises if the check let a broken file through
    assert (info.width, info.height) == (W, H)


def check_flip(at: int, bit: int):
    """A PNG with one bit flipped anywhere is refused (chunk checksums) or still decodes."""
    from tao_nb.data.pipeline import tf
    data = PNG[:at] + bytes([PNG[at] ^ (1 << bit)]) + PNG[at + 1:]
    try: image_info(data, "flip")
    except ImageFileError: return
    tf.io.decode_image(data, channels=3, expand_animations=False)


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(FUZZ, max_examples=60)
@given(st.sampled_from(list(SOURCES)), st.floats(0, 1))
def test_fuzz_cut_anywhere(source, where):
    check_cut(source, int(where * len(SOURCES[source])))


@settings(FUZZ, max_examples=40)
@given(st.integers(8, len(PNG) - 1), st.integers(0, 7))
def test_fuzz_png_bit_flips(at, bit):
    check_flip(at, bit)


@settings(FUZZ, max_examples=60)
@given(st.one_of(st.binary(max_size=200), st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"]).flatmap(
    lambda head: st.binary(max_size=200).map(lambda tail: head + tail))))
def test_fuzz_garbage_gives_only_image_file_errors(data):
    try: image_info(data, "junk")
    except ImageFileError as e: assert str(e).startswith("junk: not a readable image: ")


@pytest.mark.slow
@pytest.mark.parametrize("source", list(SOURCES))
def test_slow_every_cut_point(source):
    for at in range(len(SOURCES[source]) + 1): check_cut(source, at)


@pytest.mark.slow
def test_slow_every_png_bit_flip():
    for at in range(8, len(PNG)):
        for bit in range(8): check_flip(at, bit)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=400))
def test_slow_fuzz_garbage(data):
    try: image_info(data, "junk")
    except ImageFileError: pass


@pytest.mark.slow
def test_slow_convert_many_randomly_cut_images(tmp_path):
    """300 images, a third cut at random points: the error lists exactly the cut ones."""
    rng = np.random.default_rng(7)
    images, cut = {}, set()
    for i in range(300):
        data = encode(Image.fromarray(pixels(seed=i)), "PNG" if i % 2 else "JPEG")
        if i % 3 == 0:
            data, _ = data[: int(rng.integers(1, len(data) - 2))], cut.add(f"im{i:03d}")
        images[f"im{i:03d}"] = data
    root = write_kitti(tmp_path / "data", images)
    with pytest.raises(ImageFileError) as e:
        dataset_convert(kitti_spec(root), tmp_path / "out" / "k")
    assert str(e.value).startswith(f"{len(cut)} of 300 images cannot be converted")
