"""CTC decoding: greedy, beam and fixed-length paths, allowed characters."""
import itertools

import numpy as np
import pytest

from crnn_captcha.read.charset import Charset
from crnn_captcha.errors import UnknownCharacterError
from crnn_captcha.read.ctc import decode


def log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def path_logprobs(cs, path, sharp=8.0):
    """Log-probs whose best path is ``path`` (class indices per frame)."""
    x = np.zeros((len(path), cs.num_classes))
    x[np.arange(len(path)), path] = sharp
    return log_softmax(x)


def test_greedy_keeps_repeats_split_by_blank():
    cs = Charset("abg")
    g = cs._index["g"]
    # g g _ g _ g g  ->  "ggg"
    lp = path_logprobs(cs, [g, g, 0, g, 0, g, g])
    d = decode(lp, cs)
    assert d.text == "ggg"
    assert len(d.char_confidences) == 3
    assert all(0.0 <= c <= 1.0 for c in d.char_confidences)
    # each blank frame also gives a little to the other classes: the whole is a little less sure
    blank_ok = np.exp(lp[2, 0]) + np.exp(lp[2, g])
    assert d.confidence == pytest.approx(np.prod(d.char_confidences) * blank_ok ** 2)


def test_a_character_half_seen_between_two_lowers_the_readings_confidence():
    cs = Charset("abc")
    a, b, c = (cs._index[ch] for ch in "abc")
    clear = path_logprobs(cs, [a, a, 0, 0, 0, b, b])
    hidden = clear.copy()
    hidden[3] = np.log([0.55, 0.02, 0.02, 0.41])  # blank wins the frame, but "c" is nearly there
    sure, unsure = decode(clear, cs), decode(hidden, cs)
    assert sure.text == unsure.text == "ab"
    assert sure.char_confidences == pytest.approx(unsure.char_confidences)  # the characters read are as sure
    assert sure.confidence > 0.99
    assert unsure.confidence == pytest.approx(np.prod(unsure.char_confidences) * 0.59, rel=1e-3)  # blank, a or b


def test_frames_between_a_character_and_its_neighbour_do_not_lower_it():
    cs = Charset("ab")
    a, b = cs._index["a"], cs._index["b"]
    lp = path_logprobs(cs, [a, a, 0, b, b])
    lp[2] = np.log([0.5, 0.3, 0.2])  # a blank frame still half "a", half "b": a boundary, not a character
    d = decode(lp, cs)
    assert d.text == "ab"
    assert d.confidence == pytest.approx(np.prod(d.char_confidences))


def brute_force_best_label(lp, cs):
    """The most probable label by summing every path (tiny T only)."""
    T, C = lp.shape
    scores = {}
    for path in itertools.product(range(C), repeat=T):
        out, prev = [], 0
        for k in path:
            if k and k != prev:
                out.append(k)
            prev = k
        key = tuple(out)
        scores[key] = np.logaddexp(scores.get(key, -np.inf), sum(lp[t, k] for t, k in enumerate(path)))
    return cs.decode_indices(max(scores, key=scores.get))


def test_beam_search_finds_most_probable_label():
    cs = Charset("ab")
    rng = np.random.default_rng(1)
    for _ in range(10):
        lp = log_softmax(rng.normal(size=(5, 3)) * 2)
        assert decode(lp, cs, decoder="beam", beam_width=50).text == brute_force_best_label(lp, cs)


def test_fixed_length_and_allowed_constrain_output():
    cs = Charset("abc")
    a, b = cs._index["a"], cs._index["b"]
    lp = path_logprobs(cs, [a, 0, b, b, 0, 0, 0, 0], sharp=3.0)
    assert decode(lp, cs).text == "ab"
    three = decode(lp, cs, length=3)
    assert len(three.text) == 3
    assert decode(lp, cs, allowed="bc").text.replace("b", "").replace("c", "") == ""
    with pytest.raises(UnknownCharacterError):
        decode(lp, cs, allowed="z")
    with pytest.raises(ValueError, match="exactly 5"):
        decode(lp[:4], cs, length=5)
