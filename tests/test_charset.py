import pytest

from crnn_captcha.read.charset import Charset
from crnn_captcha.errors import UnknownCharacterError


def test_blank_is_zero_and_round_trip():
    cs = Charset("2345678bcdefgmnpwxy")
    assert cs.num_classes == 20
    idx = cs.encode("2yggg")
    assert 0 not in idx
    assert cs.decode_indices(idx) == "2yggg"


def test_from_labels_sorted_unique():
    assert Charset.from_labels(["bca", "ab2"]).chars == "2abc"


def test_unknown_character_names_char_label_and_file():
    cs = Charset("abc")
    with pytest.raises(UnknownCharacterError) as e:
        cs.encode("abz", source="x/abz.png")
    msg = str(e.value)
    assert "'z'" in msg and "abz" in msg and "x/abz.png" in msg


def test_repeated_chars_in_charset_refused():
    with pytest.raises(ValueError, match="repeated"):
        Charset("abca")
