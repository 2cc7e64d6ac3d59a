"""Shared fixtures: a real Hugging Face tokenizer built locally (no hub)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from memento.format import IM_END, IM_START, MEMENTO_TOKENS, THINK_END, THINK_START

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "traces"
REAL_TRACES = sorted(EXAMPLES.glob("memento_trace_*.json"))

_CORPUS = [
    "user assistant system The answer is 42 so we add 3 and 4 to get 7.",
    "Let me check: 12 + 30 = 42. Therefore the sum is 42. Wait, maybe not.",
    "block start begin section step end finish done summary summarize brief recap overview complete",
]


def build_tokenizer(with_memento_tokens: bool = True) -> PreTrainedTokenizerFast:
    """A small byte-level BPE tokenizer with ChatML, think and (optionally) memento special tokens."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    specials = [IM_START, IM_END, THINK_START, THINK_END, *(MEMENTO_TOKENS if with_memento_tokens else ())]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(_CORPUS * 20, trainer)
    from tokenizers import decoders

    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=IM_END, pad_token=IM_END)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer()


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tokenizer")
    build_tokenizer().save_pretrained(directory)
    return directory


from tests.real_models import smollm2_cache, smollm2_checkpoint  # noqa: E402, F401  (session fixtures)
