"""Shared fixtures: tiny real models built in the test session, and a fake embedder.

Also the session's settings: the model hubs are offline (a model id that is not a local directory
fails at once instead of after minutes of retries, as on the machines batchembed runs on), tests
are marked by what they start (`ray`, `s3`), and hypothesis runs few examples unless CI=true.
"""

from __future__ import annotations

import os

# before anything imports huggingface_hub or transformers, which read these once
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
import shutil
import socket
import string
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from batchembed import status
from batchembed.embedders.base import EmbedStats, TokenVectors
from batchembed.tokenize import Tokenized

# Hypothesis: "dev" while developing (a tenth of each test's examples, at least 10), "ci" the full
# count; CI=true selects "ci", --hypothesis-profile either. Tests give their full count as examples(n).
settings.register_profile("ci", print_blob=True)
settings.register_profile("dev")
settings.load_profile("ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev")


def examples(full: int) -> int:
    """The number of examples for a test whose full count is `full`, under the loaded profile."""
    return full if settings.get_current_profile_name() == "ci" else max(10, full // 10)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the fixtures they use, so `-m "not ray and not s3"` leaves out what starts servers."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "ray_cluster" in fixtures:
            item.add_marker(pytest.mark.ray)
        if "s3_endpoint" in fixtures:
            item.add_marker(pytest.mark.s3)


WORDS = [
    "the",
    "a",
    "an",
    "in",
    "on",
    "of",
    "to",
    "and",
    "i",
    "she",
    "he",
    "we",
    "they",
    "it",
    "was",
    "is",
    "were",
    "be",
    "too",
    "very",
    "bright",
    "light",
    "dark",
    "room",
    "read",
    "couldn",
    "n't",
    "could",
    "always",
    "radiates",
    "joy",
    "everyone",
    "around",
    "her",
    "bank",
    "river",
    "money",
    "play",
    "park",
    "children",
    "school",
    "after",
    "theatre",
    "last",
    "night",
    "mouse",
    "cell",
    "call",
    "my",
    "his",
    "prisoner",
    "stayed",
    "click",
    "left",
    "button",
    "sofa",
    "ran",
    "under",
    "tiger",
    "walked",
    "past",
    "car",
    "automobile",
    "shore",
    "happy",
    "sad",
    "would",
    "not",
    "start",
    "morning",
]


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT with a WordPiece vocabulary (every word splits into known pieces)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = tmp_path_factory.mktemp("tiny_bert")
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.punctuation, *string.digits]
    pieces += list(string.ascii_lowercase) + [f"##{c}" for c in string.ascii_lowercase + string.digits]
    pieces += [w for w in WORDS if w not in pieces]
    (directory / "vocab.txt").write_text("\n".join(dict.fromkeys(pieces)) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=True, model_max_length=64)
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).eval().save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_glove_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GloVe-format text file: lowercase words, 8 random dimensions."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("tiny_glove") / "glove.8d.txt"
    lines = [" ".join([w, *(f"{v:.6f}" for v in rng.normal(size=8))]) for w in WORDS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_embedders(tiny_bert_dir: Path, tiny_glove_file: Path) -> list:
    import torch

    from batchembed.config import EmbedOptions, GloveSpec, TransformerSpec
    from batchembed.embedders.glove import GloveEmbedder
    from batchembed.embedders.transformer import TransformerEmbedder

    device = torch.device("cpu")
    return [
        GloveEmbedder.load(GloveSpec(str(tiny_glove_file)), device),
        TransformerEmbedder.load(TransformerSpec(str(tiny_bert_dir)), EmbedOptions(token_budget=256), device),
    ]


class FakeEmbedder:
    """Deterministic vectors: a hash of the lowercased word (and, if contextual, of the
    sentence); words starting with 'x' have no vector. Lets pipeline tests run without any model."""

    missing_reason = status.REASON_OOV

    def __init__(self, name: str = "fake", dim: int = 4, contextual: bool = True) -> None:
        self.name, self.dim, self.contextual = name, dim, contextual
        self.stats = EmbedStats()
        self.calls = 0

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "kind": "fake", "dim": str(self.dim)}

    def vector(self, word: str, context: str) -> np.ndarray:
        return self.vector_of(zlib.crc32(f"{word.lower()}|{context if self.contextual else ''}".encode()))

    def preparer(self) -> FakePreparer:
        return FakePreparer(self.name, self.contextual)

    def embed_prepared(self, arrays: dict[str, np.ndarray]) -> TokenVectors:
        import torch

        self.calls += 1
        seeds = arrays["seeds"].tolist()
        vectors = np.stack([self.vector_of(seed) for seed in seeds]) if seeds else np.zeros((0, self.dim))
        self.stats.subword_tokens += len(seeds)
        return TokenVectors(torch.from_numpy(vectors.astype(np.float32)), torch.from_numpy(arrays["valid"]))

    def vector_of(self, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)

    def embed_tokens(
        self, sentences: Sequence[Tokenized], sentence_index: np.ndarray, token_index: np.ndarray
    ) -> TokenVectors:
        return self.embed_prepared(self.preparer().prepare(sentences, sentence_index, token_index))


class FakePreparer:
    """FakeEmbedder's CPU half (picklable: runs in prepare worker processes)."""

    def __init__(self, name: str, contextual: bool) -> None:
        self.name, self.contextual = name, contextual

    def prepare(self, sentences: Sequence[Tokenized], sentence_index: np.ndarray, token_index: np.ndarray) -> dict:
        words = [sentences[s].tokens[t] for s, t in zip(sentence_index.tolist(), token_index.tolist())]
        contexts = [sentences[s].text for s in sentence_index.tolist()]
        seeds = [zlib.crc32(f"{w.lower()}|{c if self.contextual else ''}".encode()) for w, c in zip(words, contexts)]
        return {
            "seeds": np.asarray(seeds, dtype=np.int64),
            "valid": np.array([not w.lower().startswith("x") for w in words], dtype=bool),
        }


@pytest.fixture
def fake_embedders() -> list[FakeEmbedder]:
    return [FakeEmbedder("static", contextual=False), FakeEmbedder("ctx", contextual=True)]


def state_dir(out: Path) -> Path:
    """The bookkeeping directory beside an output directory (io/layout.py)."""
    return out.with_name(out.name + ".batchembed")


# -- a real S3-compatible server on loopback (moto_server), for object-storage tests ----------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto_server(env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """A moto_server on a free loopback port, running and answering: (its process, its endpoint)."""
    server = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
    if server is None:
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server on loopback for the whole session; credentials are dummies."""
    proc, endpoint = start_moto_server()
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    yield endpoint
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    proc.terminate()
    proc.wait(10)


ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_EC2_METADATA_DISABLED",
)
_buckets = iter(range(1_000_000))


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A new empty bucket for one test."""
    name = f"test-{os.getpid()}-{next(_buckets)}"
    import pyarrow.fs as pafs

    pafs.S3FileSystem(endpoint_override=s3_endpoint, allow_bucket_creation=True).create_dir(name)
    return name


def write_csv(path: Path, columns: dict[str, list]) -> Path:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa.table(columns), path)
    return path


def error_line(result) -> str:  # type: ignore[no-untyped-def]
    """The one `Error:` line of a CLI result, checked to be the only one and not to follow a traceback."""
    lines = result.output.strip().splitlines()
    assert "Traceback" not in result.output, result.output
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    return errors[0]


# -- the command line, for the tests of its messages, statuses and model options --------------


def cli_invoke(*args: str, **env: str):  # type: ignore[no-untyped-def]
    """`batchembed ARGS` in this process, with extra environment variables."""
    from typer.testing import CliRunner

    from batchembed.cli import app

    return CliRunner().invoke(app, list(args), env=env or None)


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "pairs.csv", {"sentence1": ["the light was bright"], "sentence2": ["she saw light"]})


@pytest.fixture
def tiny_models(tiny_glove_file: Path, tiny_bert_dir: Path) -> list[str]:
    return ["--glove", str(tiny_glove_file), "--transformer", str(tiny_bert_dir)]


def ended_within(job: Callable[[], object], bound: float) -> object:
    """job() in a daemon thread: what it returned, or the exception it ended with. Fails the test
    if it has not ended within `bound` seconds, so a test of a run that might hang cannot hang."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(job())
        except BaseException as exc:  # noqa: BLE001 - judged by the test
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), f"the run did not end within {bound} s"
    return outcome[0]
