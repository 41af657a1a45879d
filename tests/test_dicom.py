"""DICOM display pipeline on pydicom's bundled real files and on files this package writes."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from clinagent_lab.data.dicom import (PERCENTILES, dicom_file_info, is_dicom_file, read_dicom,
                                      read_dicom_header)
from clinagent_lab.data.synth.seed_formats import write_dicom
from clinagent_lab.errors import DataFormatError, DataValidationError

CT = get_testdata_file("CT_small.dcm")  # 16-bit signed, RescaleIntercept -1024, no window
MR = get_testdata_file("MR_small.dcm")  # 16-bit, WindowCenter 600 / WindowWidth 1600, no rescale


def stretch_reference(values):
    lo, hi = np.percentile(values, PERCENTILES)
    return np.rint(np.clip((values - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def linear_window_reference(x, center, width):
    """PS3.3 C.11.2.1.2.1 LINEAR window, output 0..1."""
    x = x.astype(float)
    y = ((x - (center - 0.5)) / (width - 1) + 0.5)
    y[x <= center - 0.5 - (width - 1) / 2] = 0
    y[x > center - 0.5 + (width - 1) / 2] = 1
    return np.rint(y * 255).astype(np.uint8)


def test_bundled_files_have_the_tags_the_tests_rely_on():
    ct, mr = pydicom.dcmread(CT), pydicom.dcmread(MR)
    assert ct.PhotometricInterpretation == mr.PhotometricInterpretation == "MONOCHROME2"
    assert "WindowCenter" not in ct and float(ct.RescaleIntercept) == -1024
    assert float(mr.WindowCenter) == 600 and float(mr.WindowWidth) == 1600


def test_ct_without_window_is_percentile_stretched_after_rescale():
    ds = pydicom.dcmread(CT)
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    out = read_dicom(CT)
    assert out.dtype == np.uint8 and out.shape == (128, 128)
    assert np.abs(out.astype(int) - stretch_reference(hu).astype(int)).max() <= 1
    assert out.min() == 0 and out.max() == 255


def test_explicit_window_is_in_modality_units():
    ds = pydicom.dcmread(CT)
    hu = ds.pixel_array.astype(float) - 1024
    expected = np.rint(np.clip((hu - (40 - 200)) / 400, 0, 1) * 255).astype(np.uint8)
    out = read_dicom(CT, window="40,400")
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_header_window_applied_auto_and_ignored_with_none():
    stored = pydicom.dcmread(MR).pixel_array
    windowed = read_dicom(MR)
    assert np.abs(windowed.astype(int) - linear_window_reference(stored, 600, 1600).astype(int)).max() <= 1
    plain = read_dicom(MR, window=None)
    assert np.abs(plain.astype(int) - stretch_reference(stored.astype(float)).astype(int)).max() <= 1
    assert not np.array_equal(windowed, plain)


def test_voi_lut_sequence_is_preferred_to_the_window(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(MR)
    stored = ds.pixel_array.astype(int)
    n_entries = 2000
    lut = np.rint(np.sqrt(np.arange(n_entries) / (n_entries - 1)) * 4095).astype(int)  # gamma-like, 12 bit
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [n_entries, 0, 12])
    item.add_new("LUTData", "US", lut.tolist())
    ds.VOILUTSequence = Sequence([item])
    ds.save_as(tmp_path / "lut.dcm")
    expected = np.rint(lut[np.clip(stored, 0, n_entries - 1)] / 4095 * 255).astype(np.uint8)
    assert np.array_equal(read_dicom(tmp_path / "lut.dcm"), expected)


def test_monochrome1_is_inverted(tmp_path):
    ds = pydicom.dcmread(MR)
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "mono1.dcm"
    ds.save_as(path)
    assert np.array_equal(read_dicom(path), 255 - read_dicom(MR))


def test_written_monochrome1_and_2_display_the_same(tmp_path):
    rng = np.random.default_rng(0)
    shown = rng.integers(0, 3600, (12, 10))
    uids = ("1.2.3.1", "1.2.3.2", "1.2.3.3")
    for name, mono1, stored in (("m2.dcm", False, 200 + shown), ("m1.dcm", True, 200 + 3600 - shown)):
        write_dicom(tmp_path / name, stored.astype(np.uint16), uids=uids, patient_id="p", monochrome1=mono1,
                    window=(976.0, 3600.0))
    m2, m1 = read_dicom(tmp_path / "m2.dcm"), read_dicom(tmp_path / "m1.dcm")
    assert m2.shape == (12, 10)
    assert np.abs(m1.astype(int) - m2.astype(int)).max() <= 1
    header = read_dicom_header(tmp_path / "m1.dcm", ["PatientID", "Rows"])
    assert header.PatientID == "p" and header.Rows == 12
    syntax = pydicom.dcmread(tmp_path / "m2.dcm").file_meta.TransferSyntaxUID
    assert syntax == pydicom.uid.ExplicitVRLittleEndian


def test_plain_8bit_passes_through(tmp_path):
    ds = pydicom.dcmread(MR)
    pixels = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 200
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    del ds.WindowCenter, ds.WindowWidth
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    ds.save_as(tmp_path / "eight.dcm")
    assert np.array_equal(read_dicom(tmp_path / "eight.dcm"), pixels)


def test_missing_pixel_data_names_the_file(tmp_path):
    ds = pydicom.dcmread(CT)
    del ds.PixelData
    path = tmp_path / "no_pixels.dcm"
    ds.save_as(path)
    with pytest.raises(DataValidationError, match="no pixel data") as info:
        read_dicom(path)
    assert str(path) in str(info.value)
    with pytest.raises(DataValidationError, match="no pixel data"):
        read_dicom(get_testdata_file("rtplan.dcm"))


def test_unsupported_transfer_syntax_names_file_and_syntax():
    path = get_testdata_file("MR_small_jpeg_ls_lossless.dcm")
    try:
        pydicom.dcmread(path).pixel_array
    except Exception:
        pass
    else:
        pytest.skip("a JPEG-LS decoder is installed here")
    with pytest.raises(DataValidationError) as info:
        read_dicom(path)
    message = str(info.value)
    assert "JPEG-LS Lossless" in message and "1.2.840.10008.1.2.4.80" in message and path in message


def test_not_a_dicom_file(tmp_path):
    path = tmp_path / "x.dcm"
    path.write_bytes(b"not dicom at all" * 20)
    with pytest.raises(DataValidationError, match="cannot read DICOM") as info:
        read_dicom(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("window", ["wide", "40", "40,0"])
def test_bad_window_option(window):
    with pytest.raises(DataFormatError):
        read_dicom(CT, window=window)


def test_file_info_from_header(tmp_path):
    assert dicom_file_info(CT) == (128, 128, 1)
    assert read_dicom(CT).shape == dicom_file_info(CT)[:2]
    assert is_dicom_file(CT)
    renamed = tmp_path / "no_suffix"
    renamed.write_bytes(Path(CT).read_bytes())
    assert is_dicom_file(renamed) and dicom_file_info(renamed) == (128, 128, 1)
    (tmp_path / "x.png").write_bytes(b"\x89PNG" + b"0" * 200)
    assert not is_dicom_file(tmp_path / "x.png")
    with pytest.raises(DataValidationError, match="no Rows/Columns"):
        dicom_file_info(get_testdata_file("rtplan.dcm"))
