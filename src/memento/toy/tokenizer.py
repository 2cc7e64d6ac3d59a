"""A character-level tokenizer for the toy task, built locally with `tokenizers` and saved as a HF tokenizer."""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from memento.format import IM_END, IM_START, MEMENTO_TOKENS, THINK_END, THINK_START

PAD = "<|endoftext|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END, THINK_START, THINK_END, *MEMENTO_TOKENS]
CHARACTERS = string.digits + string.ascii_lowercase + " \n+=:;.,#-?"
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_toy_tokenizer() -> PreTrainedTokenizerFast:
    """Specials (pad, ChatML, think, memento) then one token per character."""
    vocabulary = {token: index for index, token in enumerate([*SPECIAL_TOKENS, "[UNK]", *dict.fromkeys(CHARACTERS)])}
    backend = Tokenizer(models.WordLevel(vocabulary, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token=PAD, eos_token=IM_END, bos_token=None
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
