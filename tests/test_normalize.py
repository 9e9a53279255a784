"""Name normalisation (issue 12, bug 4): hand-written tables, checked on the official vocabularies."""

from __future__ import annotations

from pathlib import Path

import pytest

from ravst.similarity import get_similarity, normalize_name

# (name, its normalised form written by hand)
ISSUE_CASES = [
    ("drum", "drum"),
    ("drums", "drum"),
    ("Drums", "drum"),
    ("A couple of dogs", "dog"),
    ("One of the dogs", "dog"),
    ("Two of the men", "man"),
    ("a pair of drums", "drum"),
    ("couple", "couple"),  # a couple (two people) is a name by itself
    ("men's choir", "man choir"),
    ("Two Men", "man"),
    ("A large group of People", "large group of person"),
]

# names that ARE in the official vocabularies (checked below), with the form written by hand
VOCAB_CASES = [
    ("drums", "drum"),
    ("cymbals", "cymbal"),
    ("pair of tablas", "tabla"),
    ("group of people", "group of person"),
    ("glasses", "glasses"),  # eyeglasses: kept
    ("headphones", "headphones"),
    ("erhus", "erhu"),
    ("mens choir", "man choir"),
    ("people", "person"),
    ("buses", "bus"),
    ("cellos", "cello"),
    ("children", "child"),
    ("calves", "calf"),
    ("babies", "baby"),
    ("benches", "bench"),
    ("sheep", "sheep"),
    ("accordions", "accordion"),
    ("two dogs", "dog"),
]

# singular / plural pairs of the vocabularies that are deliberately different objects
DIFFERENT_ON_PURPOSE = {("glass", "glasses")}


@pytest.mark.parametrize(("name", "expected"), ISSUE_CASES)
def test_issue_cases(name: str, expected: str) -> None:
    assert normalize_name(name) == expected


def test_drum_and_drums_match_both_ways_with_exact_similarity() -> None:
    exact = get_similarity("exact")
    assert exact.matrix(["drum", "drums"], ["drums", "drum"]).tolist() == [[1.0, 1.0], [1.0, 1.0]]


@pytest.fixture(scope="module")
def vocab(shared_data: Path) -> set[str]:
    torch = pytest.importorskip("torch")
    names: set[str] = set()
    for split in ("Test", "Train"):
        path = shared_data / "r_avst" / f"{split}_gt_object_vocab.pt"
        names |= set(torch.load(path, weights_only=True)["gt_object_list"])
    return names


@pytest.mark.parametrize(("name", "expected"), VOCAB_CASES)
def test_vocabulary_names(vocab: set[str], name: str, expected: str) -> None:
    assert name in vocab
    assert normalize_name(name) == expected


def test_singular_and_plural_of_the_vocabularies_agree(vocab: set[str]) -> None:
    lower = {n.lower(): n for n in vocab}
    pairs = []
    for low in lower:
        for plural in (low + "s", low + "es", low[:-1] + "ies" if low.endswith("y") else ""):
            if plural in lower and (low, plural) not in DIFFERENT_ON_PURPOSE:
                pairs.append((lower[low], lower[plural]))
    assert len(pairs) > 100  # the vocabularies hold ~150 such pairs
    bad = [(a, b) for a, b in pairs if normalize_name(a) != normalize_name(b)]
    assert bad == []


def test_normalisation_is_idempotent_and_ignores_articles_on_the_vocabularies(vocab: set[str]) -> None:
    for name in vocab:
        once = normalize_name(name)
        assert normalize_name(once) == once, name
        assert normalize_name("The " + name) == once, name
