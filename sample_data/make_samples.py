"""Regenerate the sample inputs: `python sample_data/make_samples.py`.

One file per target mode (the mode is chosen per file by its columns).
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as csv
import pyarrow.parquet as pq

HERE = Path(__file__).parent
LIGHT_1 = "The light in the room was too bright, and I couldn't read"
LIGHT_2 = "She always radiates light and joy to everyone around her"


def spans(sentence: str, word: str) -> tuple[int, int]:
    start = sentence.index(word)
    return start, start + len(word)


# 1. no target columns: every word the two sentences share
shared = pa.table(
    {
        "id": ["light", "bank", "play", "oov", "none"],
        "sentence1": [
            LIGHT_1,
            "He sat on the bank of the river and watched the water.",
            "The children play in the park after school.",
            "The zorblax was glowing in the lab.",
            "Nothing in common here.",
        ],
        "sentence2": [
            LIGHT_2,
            "She deposited the check at the bank on Monday.",
            "We saw a play at the theatre last night.",
            "Everyone stared at the zorblax for hours.",
            "Totally different words appear.",
        ],
    }
)
csv.write_csv(shared, HERE / "shared_words.csv")

# 2. one target word, found case-insensitively in both sentences
word_rows = [
    ("Bright", "The light was too bright to read by.", "She is a bright student."),
    ("bank", "They fished from the bank.", "The bank raised its rates."),
    ("cell", "The prisoner stayed in his cell.", "Call me on my cell tonight."),
    ("mouse", "The mouse ran under the sofa.", "Click the left button of the mouse."),
    ("tiger", "A tiger walked past.", "No big cats in this sentence."),
]
pq.write_table(
    pa.table({k: list(v) for k, v in zip(("word", "sentence1", "sentence2"), zip(*word_rows))}),
    HERE / "target_word.parquet",
)

# 3. two different target words (SCWS-style similarity data)
pairs = [
    ("car", "automobile", "The car would not start this morning.", "An automobile stood in the driveway."),
    ("bank", "shore", "We walked along the bank.", "The boat drifted to the shore."),
    ("bank", "money", "The bank approved the loan.", "She saved money every month."),
    ("happy", "sad", "They were happy with the result.", "The ending of the film was sad."),
]
csv.write_csv(
    pa.table({k: list(v) for k, v in zip(("word1", "word2", "sentence1", "sentence2"), zip(*pairs))}),
    HERE / "word_pairs.csv",
)

# 4. character spans (SuperGLUE WiC layout)
span_rows = [
    (LIGHT_1, "light", LIGHT_2, "light"),
    ("Turn off the light before you leave.", "light", "The box was light enough to carry.", "light"),
    ("The river bank was muddy.", "bank", "I opened an account at the bank.", "bank"),
    ("He will run the company.", "run", "She went for a run at dawn.", "run"),
]
columns: dict[str, list[object]] = {k: [] for k in ("sentence1", "sentence2", "start1", "end1", "start2", "end2")}
for s1, w1, s2, w2 in span_rows:
    a, b = spans(s1, w1)
    c, d = spans(s2, w2)
    for key, value in zip(columns, (s1, s2, a, b, c, d)):
        columns[key].append(value)
pq.write_table(pa.table(columns), HERE / "spans.parquet")

# 5. token indices into pre-tokenized sentences (the original WiC layout)
index_rows = [
    ("The bank of the river was steep .", "The bank charged a fee .", 1, 1),
    ("I will play the piano .", "The play lasted three hours .", 2, 1),
]
csv.write_csv(
    pa.table({k: list(v) for k, v in zip(("sentence1", "sentence2", "index1", "index2"), zip(*index_rows))}),
    HERE / "pretokenized_indices.csv",
)
print("wrote", sorted(p.name for p in HERE.iterdir() if p.suffix in (".csv", ".parquet")))
