"""SIIM-ACR run-length encoding: hand-worked examples, the challenge's reference decoder, bad strings."""

import numpy as np
import pytest

from clinagent_lab.data.rle import NO_MASK, is_empty_rle, parse_rle, rle_decode, rle_encode
from clinagent_lab.errors import DataValidationError

# 3 rows x 4 columns; column-major pixels 0 0 0 | 1 1 0 | 0 0 0 | 0 1 1
HAND_MASK = np.array([[0, 1, 0, 0],
                      [0, 1, 0, 1],
                      [0, 0, 0, 1]], dtype=bool)
HAND_RLE = "3 2 5 2"  # runs at 3 (length 2) and 10 (length 2); 10 - (3 + 2) = 5


def kaggle_rle2mask(rle: str, width: int, height: int) -> np.ndarray:
    """``rle2mask`` of the challenge's ``mask_functions.py``, verbatim but for names (used with ``.T``)."""
    mask = np.zeros(width * height)
    array = np.asarray([int(x) for x in rle.split()])
    starts = array[0::2]
    lengths = array[1::2]
    current_position = 0
    for index, start in enumerate(starts):
        current_position += start
        mask[current_position:current_position + lengths[index]] = 255
        current_position += lengths[index]
    return mask.reshape(width, height)


def test_decode_hand_example():
    assert rle_decode(HAND_RLE, 3, 4).tolist() == HAND_MASK.tolist()


def test_encode_hand_example():
    assert rle_encode(HAND_MASK) == HAND_RLE
    assert rle_encode(HAND_MASK.astype(np.uint8) * 255) == HAND_RLE


def test_first_and_last_pixel_runs():
    mask = np.zeros((4, 5), dtype=bool)
    mask[0, 0] = True  # flat position 0
    mask[3, 4] = True  # flat position 4 * 4 + 3 = 19, the last one
    assert rle_encode(mask) == "0 1 18 1"
    assert rle_decode("0 1 18 1", 4, 5).tolist() == mask.tolist()


def test_empty_mask_is_minus_one():
    assert rle_encode(np.zeros((3, 3))) == NO_MASK
    assert not rle_decode(" -1", 3, 3).any()
    assert is_empty_rle(" -1 ") and not is_empty_rle("1 2")


@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (7, 5), (16, 16)])
def test_round_trip_and_reference_decoder(shape):
    rng = np.random.default_rng(sum(shape))
    height, width = shape
    for density in (0.1, 0.5, 0.9):
        mask = rng.random(shape) < density
        encoded = rle_encode(mask)
        assert rle_decode(encoded, height, width).tolist() == mask.tolist()
        if encoded != NO_MASK:
            reference = kaggle_rle2mask(encoded, width, height).T > 0
            assert reference.tolist() == mask.tolist()


def test_parse_gives_absolute_starts():
    starts, lengths = parse_rle(HAND_RLE, 12)
    assert starts.tolist() == [3, 10] and lengths.tolist() == [2, 2]


@pytest.mark.parametrize("encoded, fragment", [
    ("3 2 5", "even count"),
    ("3 2 x 2", "'x' is not an integer"),
    ("3 2 5.5 2", "'5.5' is not an integer"),
    ("3 2 5 3", "past the image's 12 pixels"),
    ("3 -2", "negative"),
    ("", "empty"),
])
def test_malformed_strings_name_where(encoded, fragment):
    with pytest.raises(DataValidationError) as info:
        rle_decode(encoded, 3, 4, where="train-rle.csv line 7 (ImageId 1.2.3)")
    assert fragment in str(info.value)
    assert "train-rle.csv line 7 (ImageId 1.2.3)" in str(info.value)


def test_encode_rejects_non_2d():
    with pytest.raises(ValueError):
        rle_encode(np.zeros((2, 2, 2)))
