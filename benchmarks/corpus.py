"""Deterministic synthetic corpus of English sentence pairs for the benchmarks.

Sentences are built from clause templates over a vocabulary of common English
words, 5 to 60 words long (uniform), every sentence distinct. Each second
sentence re-uses one to three content words of its first sentence, so every
pair has shared words: in shared-word mode batchembed must embed every
sentence, exactly as the baselines do (a pair without shared words would let
batchembed skip its sentences and look faster than it is).

    python benchmarks/corpus.py --pairs 2000 --seed 0 -o corpus.parquet
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MIN_WORDS = 5
MAX_WORDS = 60

# Part of speech -> words. Content words (NOUN, VERB, ADJ, ADV) are the ones
# copied into the second sentence; some are deliberately ambiguous (light,
# bank, play...) since that is what the tool is for.
VOCAB: dict[str, tuple[str, ...]] = {
    "DET": ("the", "a", "this", "that", "every", "some", "our", "their", "my", "her", "his", "one"),
    "NAME": (
        "Anna",
        "Ben",
        "Carlos",
        "Diana",
        "Emma",
        "Farid",
        "Grace",
        "Hiro",
        "Ines",
        "Jonas",
        "Kenji",
        "Lena",
        "Maria",
        "Noah",
        "Olivia",
        "Priya",
        "Sam",
        "Tomas",
        "Yusuf",
        "Zoe",
    ),
    "NOUN": (
        "light",
        "bank",
        "river",
        "room",
        "book",
        "letter",
        "train",
        "station",
        "city",
        "garden",
        "house",
        "window",
        "door",
        "table",
        "chair",
        "teacher",
        "student",
        "doctor",
        "market",
        "money",
        "price",
        "paper",
        "plant",
        "field",
        "game",
        "match",
        "record",
        "report",
        "study",
        "course",
        "class",
        "report",
        "meeting",
        "company",
        "office",
        "computer",
        "phone",
        "message",
        "picture",
        "song",
        "music",
        "film",
        "story",
        "question",
        "answer",
        "problem",
        "idea",
        "plan",
        "road",
        "car",
        "bus",
        "bridge",
        "tree",
        "water",
        "fire",
        "stone",
        "wall",
        "street",
        "village",
        "country",
        "world",
        "morning",
        "evening",
        "night",
        "week",
        "year",
        "family",
        "friend",
        "child",
        "mother",
        "father",
        "neighbor",
        "dog",
        "cat",
        "bird",
        "horse",
        "fish",
        "coffee",
        "tea",
        "bread",
        "dinner",
        "kitchen",
        "school",
        "library",
        "hospital",
        "court",
        "case",
        "party",
        "team",
        "club",
        "board",
        "bat",
        "bar",
        "spring",
        "fall",
        "rock",
        "wave",
        "star",
        "ring",
        "seal",
        "pitch",
        "key",
        "note",
        "scale",
        "bass",
        "bow",
        "mine",
    ),
    "VERB": (
        "saw",
        "found",
        "left",
        "took",
        "made",
        "gave",
        "kept",
        "brought",
        "read",
        "wrote",
        "opened",
        "closed",
        "watched",
        "liked",
        "loved",
        "needed",
        "wanted",
        "moved",
        "changed",
        "carried",
        "painted",
        "cleaned",
        "fixed",
        "built",
        "sold",
        "bought",
        "lost",
        "missed",
        "followed",
        "visited",
        "checked",
        "played",
        "turned",
        "dropped",
        "covered",
        "filled",
        "showed",
        "lifted",
        "signed",
        "answered",
    ),
    "ADJ": (
        "bright",
        "dark",
        "old",
        "new",
        "small",
        "large",
        "quiet",
        "loud",
        "warm",
        "cold",
        "heavy",
        "light",
        "strange",
        "simple",
        "careful",
        "happy",
        "tired",
        "early",
        "late",
        "empty",
        "full",
        "clean",
        "busy",
        "famous",
        "local",
        "modern",
        "ancient",
        "narrow",
        "wide",
        "fair",
        "sharp",
        "soft",
        "fresh",
        "rich",
        "poor",
        "short",
        "long",
        "green",
        "red",
        "blue",
        "golden",
        "broken",
        "hidden",
        "open",
    ),
    "ADV": (
        "quickly",
        "slowly",
        "finally",
        "suddenly",
        "always",
        "never",
        "often",
        "quietly",
        "carefully",
        "almost",
        "really",
        "still",
        "already",
        "again",
        "together",
        "soon",
        "rarely",
        "gently",
        "easily",
    ),
    "PREP": (
        "in",
        "on",
        "near",
        "behind",
        "under",
        "over",
        "across",
        "along",
        "beside",
        "through",
        "after",
        "before",
        "without",
        "with",
        "from",
        "into",
        "around",
        "between",
    ),
    "CONJ": ("and", "but", "because", "while", "although", "so", "when", "after", "before", "until", "since"),
    "PRON": ("she", "he", "they", "we", "I", "you", "it", "everyone", "nobody", "someone"),
    "AUX": ("couldn't", "didn't", "wouldn't", "can't", "won't", "shouldn't", "might", "will", "could", "would", "must"),
    "BASEVERB": (
        "read",
        "find",
        "open",
        "close",
        "see",
        "keep",
        "carry",
        "fix",
        "sell",
        "buy",
        "play",
        "turn",
        "follow",
        "visit",
        "check",
        "move",
        "change",
        "leave",
        "take",
        "bring",
        "watch",
        "hear",
    ),
    "NUM": ("two", "three", "four", "five", "ten", "twelve", "1999", "2024", "42", "3.5", "100"),
}
CONTENT = ("NOUN", "VERB", "ADJ", "ADV", "BASEVERB")

# Clause templates: sequences of parts of speech; lowercase items are literal words.
CLAUSES: tuple[tuple[str, ...], ...] = (
    ("DET", "ADJ", "NOUN", "VERB", "DET", "NOUN"),
    ("NAME", "VERB", "DET", "ADJ", "NOUN", "PREP", "DET", "NOUN"),
    ("PRON", "ADV", "VERB", "DET", "NOUN", "PREP", "DET", "ADJ", "NOUN"),
    ("DET", "NOUN", "PREP", "DET", "NOUN", "was", "too", "ADJ"),
    ("PRON", "AUX", "BASEVERB", "DET", "NOUN"),
    ("NAME", "and", "NAME", "VERB", "NUM", "NOUN", "PREP", "DET", "NOUN"),
    ("there", "was", "a", "ADJ", "NOUN", "PREP", "DET", "NOUN"),
    ("DET", "NOUN", "ADV", "VERB", "PREP", "DET", "ADJ", "NOUN"),
    ("it's", "ADJ", "to", "BASEVERB", "DET", "NOUN", "PREP", "DET", "NOUN"),
    ("PRON", "VERB", "that", "DET", "NOUN", "was", "ADJ"),
)
ENDINGS = (".", ".", ".", ".", "!", "?")


def _clause(rng: random.Random) -> list[tuple[str, str]]:
    """One clause as (word, part of speech) items; literals get part of speech ''."""
    return [(rng.choice(VOCAB[p]), p) if p in VOCAB else (p, "") for p in rng.choice(CLAUSES)]


def _words(rng: random.Random, length: int) -> list[tuple[str, str]]:
    """Clauses joined by conjunctions until `length` words, cut to exactly `length`."""
    items = _clause(rng)
    while len(items) < length:
        items += [(rng.choice(VOCAB["CONJ"]), "CONJ"), *_clause(rng)]
    return items[:length]


def _share(rng: random.Random, items: list[tuple[str, str]], donor: list[tuple[str, str]]) -> None:
    """Overwrite 1-3 content words of `items` with content words of `donor` (same part of speech)."""
    donated = [(w, p) for w, p in donor if p in CONTENT]
    slots = [i for i, (_, p) in enumerate(items) if p in CONTENT]
    rng.shuffle(slots)
    for slot in slots[: rng.randint(1, 3)]:
        same = [w for w, p in donated if p == items[slot][1]]
        if same:
            items[slot] = (rng.choice(same), items[slot][1])
    if not any(w.casefold() in {d.casefold() for d, _ in donated} for w, _ in items):
        items[-1] = donated[0] if donated else donor[0]  # guarantee at least one shared word


def _text(rng: random.Random, items: list[tuple[str, str]]) -> str:
    words = [w for w, _ in items]
    words[0] = words[0][:1].upper() + words[0][1:]
    # an occasional comma before a conjunction, as in real text
    parts = [f", {w}" if p == "CONJ" and rng.random() < 0.5 else f" {w}" for w, p in items[1:]]
    return words[0] + "".join(parts) + rng.choice(ENDINGS)


def generate(pairs: int, seed: int = 0) -> pa.Table:
    """`pairs` rows (id, sentence1, sentence2); the same arguments give the same table."""
    rng = random.Random(seed)
    seen: set[str] = set()
    ids, first, second = [], [], []

    def distinct(make: object) -> tuple[str, list[tuple[str, str]]]:
        while True:  # collisions are rare for long sentences, common only for 5-word ones
            items = make()  # type: ignore[operator]
            text = _text(rng, items)
            if text not in seen:
                seen.add(text)
                return text, items

    for k in range(pairs):
        text1, items1 = distinct(lambda: _words(rng, rng.randint(MIN_WORDS, MAX_WORDS)))

        def make_second(donor: list[tuple[str, str]] = items1) -> list[tuple[str, str]]:
            items = _words(rng, rng.randint(MIN_WORDS, MAX_WORDS))
            _share(rng, items, donor)
            return items

        text2, _ = distinct(make_second)
        ids.append(f"p{k:07d}")
        first.append(text1)
        second.append(text2)
    return pa.table({"id": ids, "sentence1": first, "sentence2": second})


def write(pairs: int, seed: int, output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    # several row groups, so readers stream it the way they would a real file
    pq.write_table(generate(pairs, seed), output, row_group_size=8192)
    return output


def ensure(pairs: int, seed: int, directory: Path) -> Path:
    """The corpus file for (pairs, seed) in `directory`, generated once and re-used."""
    path = directory / f"corpus-{pairs}-{seed}.parquet"
    if not path.exists():
        tmp = path.with_suffix(".tmp.parquet")
        write(pairs, seed, tmp)
        tmp.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000, help="number of sentence pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=Path("corpus.parquet"))
    args = parser.parse_args()
    path = write(args.pairs, args.seed, args.output)
    print(f"wrote {args.pairs} pairs to {path}")


if __name__ == "__main__":
    main()
