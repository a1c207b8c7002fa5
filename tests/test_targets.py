"""Target alignment: spans, indices, words and shared words (pure Python)."""

from __future__ import annotations

from conftest import examples
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from batchembed import status
from batchembed.targets import TargetMode, as_int, resolve, shared_words, span_to_token
from batchembed.tokenize import _flair_clean, flair_tokenize, whitespace_tokenize

word = st.text(alphabet=st.characters(categories=("Ll", "Lu", "Nd")), min_size=1, max_size=8)
sentences = st.lists(word, min_size=1, max_size=12).map(" ".join)


@settings(max_examples=examples(300), deadline=None)
@given(sentences, st.data())
def test_every_token_span_resolves_to_that_token(text: str, data: st.DataObject) -> None:
    sentence = whitespace_tokenize(text)
    i = data.draw(st.integers(0, len(sentence) - 1))
    assert span_to_token(sentence, sentence.starts[i], sentence.ends[i]) == i
    # and an index target names the same token
    assert resolve(TargetMode.INDICES, sentence, sentence, (i, i)) == [(i, i)]


@settings(max_examples=examples(300), deadline=None)
@given(sentences, st.data())
def test_span_inside_a_token_is_not_on_a_boundary(text: str, data: st.DataObject) -> None:
    sentence = whitespace_tokenize(text)
    i = data.draw(st.integers(0, len(sentence) - 1))
    start, end = sentence.starts[i], sentence.ends[i]
    assume(end - start >= 2)
    cut = data.draw(st.integers(start + 1, end - 1))
    assert span_to_token(sentence, start, cut) == status.SPAN_NOT_ON_TOKEN_BOUNDARY
    assert span_to_token(sentence, cut, end) == status.SPAN_NOT_ON_TOKEN_BOUNDARY


@settings(max_examples=examples(200), deadline=None)
@given(sentences, st.data())
def test_span_over_two_tokens(text: str, data: st.DataObject) -> None:
    sentence = whitespace_tokenize(text)
    assume(len(sentence) >= 2)
    i = data.draw(st.integers(0, len(sentence) - 2))
    assert span_to_token(sentence, sentence.starts[i], sentence.ends[i + 1]) == status.SPAN_MULTIPLE_TOKENS


@settings(max_examples=examples(200), deadline=None)
@given(
    st.text(max_size=40),
    st.one_of(st.none(), st.integers(-5, 60), st.floats(allow_nan=True), st.text(max_size=4)),
    st.one_of(st.none(), st.integers(-5, 60), st.floats(allow_nan=True), st.text(max_size=4)),
)
def test_any_span_value_gives_a_token_or_a_status(text: str, start: object, end: object) -> None:
    sentence = flair_tokenize(text) if text.strip() else whitespace_tokenize(text)
    got = span_to_token(sentence, start, end)
    if isinstance(got, int):
        assert sentence.starts[got] == as_int(start) and sentence.ends[got] == as_int(end)
    else:
        assert status.is_bad_row(got)


def test_span_statuses() -> None:
    s = flair_tokenize("I couldn't read")  # I | could | n't | read
    assert span_to_token(s, 2, 10) == status.SPAN_MULTIPLE_TOKENS
    assert span_to_token(s, 2, 7) == 1
    assert span_to_token(s, 11, 99) == status.SPAN_OUT_OF_RANGE
    assert span_to_token(s, 5, 3) == status.INVALID_TARGET
    assert span_to_token(s, None, 3) == status.INVALID_TARGET
    assert span_to_token(s, "2", "7.0") == status.INVALID_TARGET  # "7.0" is text, not an integer
    assert span_to_token(s, 2.0, 7.0) == 1  # Parquet/CSV floats holding integers are fine
    assert span_to_token(flair_tokenize("a  b"), 1, 2) == status.SPAN_NOT_ON_TOKEN_BOUNDARY  # whitespace only


def test_as_int() -> None:
    assert [as_int(v) for v in (3, "4", " 5 ", 6.0, -1, 1.5, True, None, "x", "٣")] == [
        3,
        4,
        5,
        6,
        None,
        None,
        None,
        None,
        None,
        None,
    ]


def test_word_mode_is_case_insensitive_and_pairs_every_occurrence() -> None:
    s1 = whitespace_tokenize("Light the light")
    s2 = whitespace_tokenize("a LIGHT and a light")
    assert resolve(TargetMode.WORD, s1, s2, ("light",)) == [(0, 1), (0, 4), (2, 1), (2, 4)]
    assert resolve(TargetMode.WORD, s1, s2, ("dark",)) == status.TARGET_NOT_FOUND
    assert resolve(TargetMode.WORD, s1, s2, ("  ",)) == status.INVALID_TARGET
    assert resolve(TargetMode.WORD, s1, s2, (None,)) == status.INVALID_TARGET


def test_two_words_mode() -> None:
    s1 = whitespace_tokenize("the car stopped")
    s2 = whitespace_tokenize("an automobile and an Automobile")
    assert resolve(TargetMode.WORDS, s1, s2, ("car", "automobile")) == [(1, 1), (1, 4)]
    assert resolve(TargetMode.WORDS, s1, s2, ("car", "bus")) == status.TARGET_NOT_FOUND


def test_shared_words_skip_punctuation_and_fold_case() -> None:
    s1 = flair_tokenize("The light, the LIGHT!")
    s2 = flair_tokenize("light and the light, again!")
    pairs = shared_words(s1, s2)
    words = {(s1.tokens[i].lower(), s2.tokens[j].lower()) for i, j in pairs}
    assert words == {("the", "the"), ("light", "light")}
    assert len(pairs) == 2 * 1 + 2 * 2  # 'the' x2 * 1, 'light' x2 * 2
    assert shared_words(flair_tokenize("a b"), flair_tokenize("c d")) == status.NO_SHARED_WORDS
    assert shared_words(flair_tokenize("x ."), flair_tokenize("y .")) == status.NO_SHARED_WORDS


def test_casefold_matches_german_sharp_s() -> None:
    s1 = whitespace_tokenize("die Straße")
    s2 = whitespace_tokenize("DIE STRASSE")
    assert resolve(TargetMode.SHARED, s1, s2, ()) == [(0, 0), (1, 1)]


def test_flair_tokenizer_matches_flair_sentence() -> None:
    from flair.data import Sentence

    text = "The light in the room was too bright, and I couldn't read"
    ours = flair_tokenize(text)
    theirs = Sentence(text)
    assert list(ours.tokens) == [t.text for t in theirs]
    assert ours.tokens[11:13] == ("could", "n't")
    for token, start, end in zip(ours.tokens, ours.starts, ours.ends):
        assert text[start:end] == token


@given(st.text(max_size=60))
@settings(max_examples=examples(300), deadline=None)
def test_token_offsets_point_at_the_token_text(text: str) -> None:
    tokenizations = [whitespace_tokenize(text)] + ([flair_tokenize(text)] if text.strip() else [])
    for tokenized in tokenizations:
        previous_end = 0
        for token, start, end in zip(tokenized.tokens, tokenized.starts, tokenized.ends):
            assert previous_end <= start < end <= len(text)
            # flair drops zero-width characters and reads C1 controls as cp1252
            # ('\x80' -> '€'); offsets still point at the original text
            original = text[start:end]
            assert original == token or _flair_clean(original)[0] == token
            previous_end = end


@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
    | st.sampled_from(
        ["a\u200bb c", "x \u200b y", "\x810:", "caf\u00e9 \u202eabc", "e\u0301t\u00e9", "😀 ok 😀", "I couldn't"]
    )
)
@settings(max_examples=examples(300), deadline=None)
def test_flair_tokenize_equals_flair_sentence(text: str) -> None:
    from flair.data import Sentence

    assume(text.strip())
    assert list(flair_tokenize(text).tokens) == [t.text for t in Sentence(text)]
