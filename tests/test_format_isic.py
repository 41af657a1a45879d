"""ISIC 2019 adapter on the synthetic writer's output, which uses the challenge's exact file layout."""

import shutil

import numpy as np
import pandas as pd
import pytest

# Import the adapter module itself: it registers "isic2019" even if another adapter of the package is absent.
from clinagent_lab.data.adapters import isic2019
from clinagent_lab.data.formats import detect_format, load_dataset
from clinagent_lab.data.synth import generate
from clinagent_lab.errors import DataFormatError, DataValidationError, UnknownNameError

CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]


@pytest.fixture(scope="module")
def isic_root(tmp_path_factory):
    return generate("isic2019", tmp_path_factory.mktemp("isic") / "ISIC2019", seed=3, n=100, image_size=16)


@pytest.fixture()
def isic_copy(isic_root, tmp_path):
    return shutil.copytree(isic_root, tmp_path / "ISIC2019")


def reference_labels(root):
    gt = pd.read_csv(root / isic2019.GT_CSV)
    return dict(zip(gt["image"], gt[CLASSES].to_numpy().argmax(axis=1)))


def test_writer_layout_is_the_challenge_layout(isic_root):
    header = (isic_root / isic2019.GT_CSV).read_text().splitlines()[0]
    assert header == "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK"
    assert (isic_root / isic2019.METADATA_CSV).read_text().startswith(
        "image,age_approx,anatom_site_general,lesion_id,sex\n")
    gt = pd.read_csv(isic_root / isic2019.GT_CSV, dtype=str)
    assert set(gt[CLASSES[0]]) <= {"1.0", "0.0"} and set(gt["UNK"]) == {"0.0"}
    images = sorted(p.name for p in (isic_root / isic2019.IMAGES_DIR).iterdir())
    assert "ATTRIBUTION.txt" in images and "LICENSE.txt" in images
    assert all(n.startswith("ISIC_00") for n in images if n.endswith(".jpg"))


def test_load_labels_groups_metadata(isic_root):
    ds = isic2019.load(isic_root)
    table = ds.table
    assert ds.format == "isic2019" and ds.classes == CLASSES and ds.task_type == "multiclass_classification"
    assert len(table) == 100 and table["split"].isna().all()
    ref = reference_labels(isic_root)
    assert [ref[i] for i in table["image_id"]] == table["label"].tolist()
    counts = table["label"].value_counts()
    assert counts.min() >= 6 and counts.idxmax() == CLASSES.index("NV") and len(counts) == 8
    assert any("UNK" in w for w in ds.warnings)

    meta = pd.read_csv(isic_root / isic2019.METADATA_CSV).set_index("image")
    lesion = meta.loc[table["image_id"], "lesion_id"]
    expected = [les if isinstance(les, str) else img for img, les in zip(table["image_id"], lesion)]
    assert table["group_id"].tolist() == expected
    assert lesion.isna().any(), "some images have no lesion id"
    assert table["group_id"].value_counts().max() >= 2, "some lesions have several images"
    assert (table.groupby("group_id")["label"].nunique() == 1).all()
    assert ds.source["group_column"] == "lesion_id" and ds.source["splits_given"] is False

    assert ds.metadata_columns == ["age_approx", "anatom_site_general", "sex"]
    assert table["age_approx"].dtype == float
    assert table[ds.metadata_columns].isna().any().any(), "the writer leaves some cells empty"
    np.testing.assert_array_equal(table["age_approx"].to_numpy(), meta.loc[table["image_id"], "age_approx"])

    image = ds.read_image(0)
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8


def test_class_is_learnable_from_colour(isic_root):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ds = isic2019.load(isic_root)
    images = [ds.read_image(i).astype(float) / 255 for i in range(len(ds))]
    centre = [im[4:12, 4:12].reshape(-1, 3) for im in images]  # where the lesion is
    feats = np.array([np.concatenate([c.mean(0), c.std(0), im.reshape(-1, 3).mean(0)])
                      for c, im in zip(centre, images)])
    y = ds.table["label"].to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=10))
    acc = cross_val_score(model, feats, y, cv=3).mean()
    majority = np.bincount(y).max() / len(y)
    assert acc > majority + 0.2


def test_detect_root_parent_and_images_folder(isic_root):
    assert isic2019.detect(isic_root)
    assert detect_format(isic_root) == "isic2019"
    assert detect_format(isic_root.parent) == "isic2019"
    assert detect_format(isic_root / isic2019.IMAGES_DIR) == "isic2019"
    assert detect_format(isic_root / isic2019.GT_CSV) == "isic2019"
    assert not isic2019.detect(isic_root / isic2019.METADATA_CSV)
    assert len(load_dataset(isic_root.parent)) == 100


def test_melanoma_vs_nevus_subtask(isic_root):
    ds = isic2019.load(isic_root, subtask="melanoma_vs_nevus")
    ref = reference_labels(isic_root)
    kept = [i for i, c in ref.items() if CLASSES[c] in ("MEL", "NV")]
    assert ds.classes == ["NV", "MEL"] and ds.task_type == "binary_classification"
    assert sorted(ds.table["image_id"]) == sorted(kept)
    is_mel = [CLASSES[ref[i]] == "MEL" for i in ds.table["image_id"]]
    assert ds.table["label"].tolist() == [int(m) for m in is_mel]
    assert any("melanoma_vs_nevus" in w for w in ds.warnings)
    with pytest.raises(UnknownNameError, match="melanoma_vs_nevus"):
        isic2019.load(isic_root, subtask="benign_vs_malignant")


def _edit_gt(root, line, new_values):
    csv = root / isic2019.GT_CSV
    lines = csv.read_text().splitlines()
    image = lines[line - 1].split(",")[0]
    lines[line - 1] = image + "," + ",".join(new_values)
    csv.write_text("\n".join(lines) + "\n")
    return image


@pytest.mark.parametrize("values, fragment", [
    (["0.0"] * 8 + ["1.0"], "mark UNK"),
    (["1.0", "1.0"] + ["0.0"] * 7, "the first marks ['MEL', 'NV']"),
    (["0.0"] * 9, "the first marks none"),
    (["0.5"] + ["0.0"] * 8, "not 0 or 1"),
])
def test_bad_ground_truth_row_names_line_and_image(isic_copy, values, fragment):
    image = _edit_gt(isic_copy, 5, values)
    with pytest.raises(DataValidationError) as info:
        isic2019.load(isic_copy)
    message = str(info.value)
    assert fragment in message and f"line 5 (image {image})" in message


def test_missing_csv_or_images_folder(isic_copy):
    shutil.rmtree(isic_copy / isic2019.IMAGES_DIR)
    with pytest.raises(DataFormatError, match="missing ISIC_2019_Training_Input/") as info:
        isic2019.load(isic_copy)
    assert isic2019.GT_CSV in info.value.fix
    (isic_copy / isic2019.IMAGES_DIR).mkdir()
    (isic_copy / isic2019.GT_CSV).unlink()
    with pytest.raises(DataFormatError, match="missing ISIC_2019_Training_GroundTruth.csv"):
        isic2019.load(isic_copy)


def test_few_missing_images_warn_many_stop(isic_copy):
    files = sorted((isic_copy / isic2019.IMAGES_DIR).glob("*.jpg"))
    for f in files[:3]:
        f.unlink()
    ds = isic2019.load(isic_copy)
    assert len(ds) == 97
    warning = next(w for w in ds.warnings if "have no file" in w)
    assert warning.startswith("3 of 100") and files[0].stem in warning
    for f in files[3:20]:
        f.unlink()
    with pytest.raises(DataValidationError, match="20 of 100 ground-truth images have no file"):
        isic2019.load(isic_copy)


def test_metadata_mismatch_warns_with_ids(isic_copy):
    csv = isic_copy / isic2019.METADATA_CSV
    lines = csv.read_text().splitlines()
    dropped = lines[3].split(",")[0]
    lines = lines[:3] + lines[4:] + ["ISIC_9999999,50.0,head/neck,HAM_9999999,male"]
    csv.write_text("\n".join(lines) + "\n")
    ds = isic2019.load(isic_copy)
    warnings = " | ".join(ds.warnings)
    assert f"1 images have no row in {isic2019.METADATA_CSV}: {dropped}" in warnings
    assert "1 rows of" in warnings and "ISIC_9999999" in warnings
    row = ds.table.set_index("image_id").loc[dropped]
    assert row["group_id"] == dropped and pd.isna(row["age_approx"])


def test_without_metadata_groups_are_images(isic_copy):
    (isic_copy / isic2019.METADATA_CSV).unlink()
    ds = isic2019.load(isic_copy)
    assert ds.metadata_columns == [] and (ds.table["group_id"] == ds.table["image_id"]).all()
    assert ds.source["group_column"] is None
    assert any("lesion ids unknown" in w for w in ds.warnings)


def test_writer_refuses_too_few_images(tmp_path):
    with pytest.raises(ValueError, match="n >= 60"):
        generate("isic2019", tmp_path, n=20)


def test_writer_is_deterministic(isic_root, tmp_path):
    again = generate("isic2019", tmp_path / "again", seed=3, n=100, image_size=16)
    for name in (isic2019.GT_CSV, isic2019.METADATA_CSV):
        assert (again / name).read_text() == (isic_root / name).read_text()
    first = sorted((isic_root / isic2019.IMAGES_DIR).glob("*.jpg"))[0]
    assert (again / isic2019.IMAGES_DIR / first.name).read_bytes() == first.read_bytes()
