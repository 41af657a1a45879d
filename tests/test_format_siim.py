"""SIIM-ACR adapter on the synthetic writer's output (real DICOMs and the Kaggle CSV), and its PNG variant."""

import shutil

import numpy as np
import pandas as pd
import pydicom
import pytest

# Import the adapter module itself: it registers "siim_acr" even if another adapter of the package is absent.
from clinagent_lab.data.adapters import siim_acr
from clinagent_lab.data.formats import detect_format, load_dataset
from clinagent_lab.data.rle import rle_decode
from clinagent_lab.data.synth import generate
from clinagent_lab.errors import DataFormatError, DataValidationError

N, SIZE = 60, 32


@pytest.fixture(scope="module")
def siim_root(tmp_path_factory):
    return generate("siim_acr", tmp_path_factory.mktemp("siim") / "siim", seed=1, n=N, image_size=SIZE)


@pytest.fixture()
def siim_copy(siim_root, tmp_path):
    return shutil.copytree(siim_root, tmp_path / "siim")


def read_rle(root):
    rows = pd.read_csv(root / "train-rle.csv", dtype=str, skipinitialspace=True)
    rows.columns = [c.strip() for c in rows.columns]
    return rows


def test_writer_layout_is_the_kaggle_layout(siim_root):
    assert (siim_root / "train-rle.csv").read_text().startswith("ImageId, EncodedPixels\n")
    dicoms = sorted((siim_root / "dicom-images-train").rglob("*.dcm"))
    assert len(dicoms) == N and len(list((siim_root / "dicom-images-test").rglob("*.dcm"))) > 0
    photometric = set()
    for path in dicoms:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert path.parent.name == ds.SeriesInstanceUID and path.parent.parent.name == ds.StudyInstanceUID
        assert path.stem == ds.SOPInstanceUID
        assert (ds.BitsAllocated, ds.BitsStored) == (16, 12) and "WindowCenter" in ds and "RescaleSlope" in ds
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        photometric.add(ds.PhotometricInterpretation)
    assert photometric == {"MONOCHROME1", "MONOCHROME2"}


def test_load_labels_groups_drains(siim_root):
    ds = siim_acr.load(siim_root)
    table = ds.table
    assert ds.format == "siim_acr" and ds.classes == ["normal", "pneumothorax"]
    assert len(table) == N and table["split"].isna().all()
    rows = read_rle(siim_root)
    expected = (rows["EncodedPixels"].str.strip() != "-1").groupby(rows["ImageId"]).any()
    assert table["label"].tolist() == [int(expected[i]) for i in table["image_id"]]
    assert 0 < table["label"].sum() < N
    assert rows.groupby("ImageId").size().max() == 2, "some pneumothoraces have two RLE rows"

    patients = {p.stem: pydicom.dcmread(p, stop_before_pixels=True).PatientID
                for p in (siim_root / "dicom-images-train").rglob("*.dcm")}
    assert table["group_id"].tolist() == [patients[i] for i in table["image_id"]]
    assert table["group_id"].value_counts().max() == 2 and table["group_id"].nunique() < N
    assert ds.source["group_column"] == "PatientID" and ds.source["splits_given"] is False

    drains = pd.read_csv(siim_root / "chest_drain_labels.csv").set_index("ImageId")["drain"]
    assert ds.metadata_columns == ["chest_drain"]
    assert table["chest_drain"].tolist() == [int(drains[i]) for i in table["image_id"]]
    pos, neg = table[table["label"] == 1], table[table["label"] == 0]
    assert pos["chest_drain"].mean() - neg["chest_drain"].mean() > 0.4, "drains follow the label"
    assert ds.warnings == []


def test_images_masks_and_photometric(siim_root):
    ds = siim_acr.load(siim_root)
    rows = read_rle(siim_root)
    for i in range(len(ds)):
        image = ds.read_image(i)
        assert image.shape == (SIZE, SIZE, 1) and image.dtype == np.uint8
        gray = image[:, :, 0].astype(float)
        # the spine (centre columns) is bright whether the file is MONOCHROME1 or MONOCHROME2
        assert gray[:, SIZE // 2 - 1:SIZE // 2 + 1].mean() > gray.mean() + 20
        if ds.table["label"][i]:
            encoded = rows.loc[rows["ImageId"] == ds.table["image_id"][i], "EncodedPixels"]
            mask = np.any([rle_decode(e, SIZE, SIZE) for e in encoded], axis=0)
            assert mask.any() and gray[mask].mean() < gray[~mask].mean() - 40, "the finding is visible"


def test_detect_root_parent_and_dicom_folder(siim_root):
    assert siim_acr.detect(siim_root)
    assert detect_format(siim_root) == "siim_acr"
    assert detect_format(siim_root.parent) == "siim_acr"
    assert detect_format(siim_root / "dicom-images-train") == "siim_acr"
    assert detect_format(siim_root / "train-rle.csv") == "siim_acr"
    assert not siim_acr.detect(siim_root / "chest_drain_labels.csv")
    assert len(load_dataset(siim_root.parent)) == N


def test_png_variant(tmp_path):
    root = generate("siim_acr", tmp_path / "png", seed=2, n=30, image_size=SIZE, layout="png")
    assert not (root / "dicom-images-train").exists()
    assert detect_format(root) == "siim_acr"
    ds = load_dataset(root)
    assert ds.source["image_format"] == "png" and len(ds) == 30
    assert (ds.table["group_id"] == ds.table["image_id"]).all()
    rows = read_rle(root)
    expected = (rows["EncodedPixels"] != "-1").groupby(rows["ImageId"]).any()
    assert ds.table["label"].tolist() == [int(expected[i]) for i in ds.table["image_id"]]
    assert ds.read_image(0).shape == (SIZE, SIZE, 1)


def test_header_without_space_and_values_without_space(siim_copy):
    csv = siim_copy / "train-rle.csv"
    csv.write_text(csv.read_text().replace(", ", ","))
    assert csv.read_text().startswith("ImageId,EncodedPixels\n")
    rows = read_rle(siim_copy)
    positives = rows.loc[rows["EncodedPixels"] != "-1", "ImageId"]
    table = siim_acr.load(siim_copy).table
    assert table.loc[table["label"] == 1, "image_id"].tolist() == list(dict.fromkeys(positives))


@pytest.mark.parametrize("bad, fragment", [
    ("5 3 7", "even count"),
    ("5 x", "'x' is not an integer"),
    (f"{SIZE * SIZE - 2} 5", "past the image's 1024 pixels"),
])
def test_malformed_rle_names_line_and_image(siim_copy, bad, fragment):
    csv = siim_copy / "train-rle.csv"
    lines = csv.read_text().splitlines()
    line = next(n for n, text in enumerate(lines[1:], start=2) if not text.endswith(", -1"))
    image_id = lines[line - 1].split(",")[0]
    lines[line - 1] = f"{image_id}, {bad}"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as info:
        siim_acr.load(siim_copy)
    message = str(info.value)
    assert fragment in message and f"train-rle.csv line {line} (ImageId {image_id})" in message


def test_drain_csv_option_extra_ids_and_missing_rows(siim_copy):
    original = pd.read_csv(siim_copy / "chest_drain_labels.csv")
    (siim_copy / "chest_drain_labels.csv").unlink()
    assert "chest_drain" not in siim_acr.load(siim_copy).table.columns
    edited = original.rename(columns={"drain": "chest_drain"}).iloc[2:]
    edited = pd.concat([edited, pd.DataFrame({"ImageId": ["9.9.9", "8.8.8"], "chest_drain": [1, 0]})])
    edited.to_csv(siim_copy / "my_drains.csv", index=False)
    ds = siim_acr.load(siim_copy, drain_csv=siim_copy / "my_drains.csv")
    warnings = " | ".join(ds.warnings)
    assert "2 ImageIds in my_drains.csv are not in the data (ignored): 8.8.8, 9.9.9" in warnings
    assert "2 of 60 images have no drain annotation" in warnings
    table = ds.table.set_index("image_id")
    assert table.loc[original["ImageId"][:2], "chest_drain"].isna().all()
    kept = original.iloc[2:]
    assert table.loc[kept["ImageId"], "chest_drain"].tolist() == kept["drain"].tolist()
    with pytest.raises(DataFormatError, match="drain annotation file not found"):
        siim_acr.load(siim_copy, drain_csv="nope.csv")


def test_bad_drain_value_names_line(siim_copy):
    csv = siim_copy / "chest_drain_labels.csv"
    lines = csv.read_text().splitlines()
    image_id = lines[3].split(",")[0]
    lines[3] = f"{image_id},yes"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match=f"line 4 \\(ImageId {image_id}\\)"):
        siim_acr.load(siim_copy)


def test_missing_csv_or_images(siim_copy):
    (siim_copy / "train-rle.csv").rename(siim_copy / "labels.csv")
    assert siim_acr.detect(siim_copy)  # the DICOM folder is enough to recognise the layout
    with pytest.raises(DataFormatError, match="no train-rle.csv"):
        siim_acr.load(siim_copy)
    (siim_copy / "labels.csv").rename(siim_copy / "train-rle.csv")
    shutil.rmtree(siim_copy / "dicom-images-train")
    with pytest.raises(DataFormatError, match="no dicom-images-train/ or png_images/"):
        siim_acr.load(siim_copy)


def test_few_missing_dicoms_warn_many_stop(siim_copy):
    files = sorted((siim_copy / "dicom-images-train").rglob("*.dcm"))
    files[0].unlink()
    ds = siim_acr.load(siim_copy)
    assert len(ds) == N - 1
    warning = next(w for w in ds.warnings if "labelled images have no file" in w)
    assert warning.startswith(f"1 of {N} labelled") and files[0].stem in warning
    for f in files[1:10]:
        f.unlink()
    with pytest.raises(DataValidationError, match=f"10 of {N} labelled images have no file"):
        siim_acr.load(siim_copy)


def test_without_headers_groups_are_images(siim_root):
    ds = siim_acr.load(siim_root, read_headers=False)
    assert (ds.table["group_id"] == ds.table["image_id"]).all() and ds.source["group_column"] is None


def test_writer_is_deterministic(tmp_path):
    a = generate("siim_acr", tmp_path / "a", seed=7, n=10, image_size=16)
    b = generate("siim_acr", tmp_path / "b", seed=7, n=10, image_size=16)
    c = generate("siim_acr", tmp_path / "c", seed=8, n=10, image_size=16)
    for name in ("train-rle.csv", "chest_drain_labels.csv"):
        assert (a / name).read_text() == (b / name).read_text()
    assert (a / "train-rle.csv").read_text() != (c / "train-rle.csv").read_text()
    files_a = sorted(p.relative_to(a) for p in a.rglob("*.dcm"))
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*.dcm"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)
