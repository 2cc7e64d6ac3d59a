"""`MementoGenerator`: batched decoding with physical KV eviction for any transformers causal LM.

One forward per step for the whole batch (`memento.inference.forward`: the trackers, the masks
and the evicting cache); this module adds prompts, sampling, stopping and streaming on top.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from memento.config import MementoConfig
from memento.errors import UsageError
from memento.format import IM_END, SpecialIds
from memento.inference.cache import EvictingKVCache
from memento.inference.forward import EvictingForward, Row
from memento.inference.logits import MaxBlockTokensProcessor, sampling_warpers
from memento.inference.results import Eviction, GenerationResult, StreamEvent
from memento.inference.text import text_delta

__all__ = ["Eviction", "GenerationResult", "MementoGenerator", "Prompts", "StreamEvent"]

logger = logging.getLogger("memento.inference")

Prompts = str | Sequence[str] | Sequence[Sequence[int]] | torch.Tensor


class MementoGenerator:
    """Generate, stream and score with memento attention and real KV eviction.

    Args:
        model: a transformers causal LM (Qwen3, Llama, Phi-3/4, Olmo 3, ...); eager or sdpa attention.
        tokenizer: its tokenizer, with the memento tokens; None works on token ids only (no text,
            `special_ids` required).
        config: memento options.
        special_ids: override the ids read from the tokenizer.
    """

    def __init__(
        self, model: Any, tokenizer: Any, config: MementoConfig, *, special_ids: SpecialIds | None = None
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        if special_ids is None and tokenizer is None:
            raise ValueError("without a tokenizer, pass special_ids")
        self.special_ids = special_ids or SpecialIds.from_tokenizer(tokenizer, config)
        self.last_cache: EvictingKVCache | None = None
        self._block_cap = (
            MaxBlockTokensProcessor.from_config(self.special_ids, config) if config.max_block_tokens else None
        )
        pad = getattr(tokenizer, "pad_token_id", None)
        self._engine = EvictingForward(model, config, self.special_ids, int(pad) if pad is not None else 0)
        self._stop_ids = {
            int(i) for i in (getattr(tokenizer, "eos_token_id", None), self.special_ids.im_end) if i is not None
        }
        if tokenizer is not None and hasattr(tokenizer, "convert_tokens_to_ids"):
            im_end = tokenizer.convert_tokens_to_ids(IM_END)
            if isinstance(im_end, int) and im_end != getattr(tokenizer, "unk_token_id", None):
                self._stop_ids.add(im_end)

    # -----------------------------------------------------------------------------------------
    # Prompts

    def encode_prompts(self, prompts: Prompts) -> list[list[int]]:
        """Strings get the chat template (user turn + generation prompt); id lists pass through.

        An empty (or blank) string is refused, as vLLM refuses an empty prompt: the model would answer
        the chat template alone.
        """
        if isinstance(prompts, torch.Tensor):
            return [row.tolist() for row in (prompts[None] if prompts.dim() == 1 else prompts)]
        if isinstance(prompts, str):
            prompts = [prompts]
        encoded = []
        for index, prompt in enumerate(prompts):
            if isinstance(prompt, str):
                if not prompt.strip():
                    where = "the prompt" if len(prompts) == 1 else f"prompt {index + 1} of {len(prompts)}"
                    raise UsageError(f"{where} is empty; expected the text of a user message")
                encoded.append(self._chat_ids(prompt))
            else:
                encoded.append([int(t) for t in prompt])
        if not encoded or any(not ids for ids in encoded):
            raise ValueError("every prompt must have at least one token")
        return encoded

    def _chat_ids(self, prompt: str) -> list[int]:
        messages = [{"role": "user", "content": prompt}]
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            return [int(t) for t in ids]
        text = f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    # -----------------------------------------------------------------------------------------
    # The forward step

    def _position_limit(self) -> int | None:
        """The model's max_position_embeddings: eviction never renumbers positions, so it caps the logical length."""
        return getattr(self.model.config.get_text_config(), "max_position_embeddings", None)

    def _new_token_budget(self, index: int, prompt_tokens: int, max_new_tokens: int) -> int:
        """`max_new_tokens`, cut (with a warning) so prompt + generated tokens fit the model's positions."""
        limit = self._position_limit()
        if limit is None or prompt_tokens + max_new_tokens <= limit:
            return max_new_tokens
        if prompt_tokens >= limit:
            raise ValueError(
                f"prompt {index} has {prompt_tokens} tokens, the model's max_position_embeddings is {limit}: "
                "no position left to generate"
            )
        logger.warning(
            "prompt %d: %d tokens + max_new_tokens %d exceed max_position_embeddings %d; "
            "generation stops after %d tokens (finish_reason 'length')",
            index,
            prompt_tokens,
            max_new_tokens,
            limit,
            limit - prompt_tokens,
        )
        return limit - prompt_tokens

    # -----------------------------------------------------------------------------------------
    # Scoring (teacher forcing)

    def score(
        self,
        input_ids: Sequence[int] | torch.Tensor,
        *,
        chunk_size: int = 1,
        on_step: Callable[[EvictingKVCache], None] | None = None,
    ) -> torch.Tensor:
        """Teacher-forced logits through the evicting cache, the same computation generation does.

        Args:
            input_ids: [L] or [1, L] token ids.
            chunk_size: tokens per forward (1 = exactly as decoding).
            on_step: called with the cache after every forward (after its evictions).

        Returns:
            FloatTensor [L, vocab]: logits predicting token i+1 at row i.
        """
        ids = input_ids.tolist() if isinstance(input_ids, torch.Tensor) else list(input_ids)
        if ids and isinstance(ids[0], list):
            if len(ids) != 1:
                raise ValueError(f"score() takes one sequence, got a batch of {len(ids)}")
            ids = ids[0]
        if not ids:
            raise ValueError("score() needs at least one token")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        limit = self._position_limit()
        if limit is not None and len(ids) > limit:
            raise ValueError(
                f"the sequence has {len(ids)} tokens, beyond the model's max_position_embeddings ({limit})"
            )
        cache = EvictingKVCache(1, self.model.device)
        row = self._engine.new_row(0, ids)
        outputs = []
        for start in range(0, len(ids), chunk_size):
            for piece in self._engine.split_for_restart(ids[start : start + chunk_size]):
                outputs.append(self._engine.forward(cache, [row], [piece], step=start)[0].float())
                row.result.kv_trace.append(cache.live_tokens()[0])
                if on_step is not None:
                    on_step(cache)
        self.last_cache = cache
        self.last_result = row.result
        return torch.cat(outputs, dim=0)

    # -----------------------------------------------------------------------------------------
    # Generation

    def stream(
        self,
        prompts: Prompts,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float | None = None,
        top_k: int | None = None,
        min_p: float | None = None,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        logits_processor: Sequence[LogitsProcessor] | None = None,
        results: list[GenerationResult] | None = None,
        seeds: Sequence[int] | None = None,
        return_logprobs: bool = False,
    ) -> Iterator[StreamEvent]:
        """Yield tokens as they are sampled, for every sequence of the batch.

        Same arguments as `generate`; pass a list as `results` to receive the final results.
        `seeds` (one per prompt, instead of `seed`): each sequence samples from its own generator,
        so its tokens do not depend on the sequences it is batched with.
        """
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if stop and self.tokenizer is None:
            raise ValueError("stop strings need a tokenizer to decode the generated text")
        prompt_ids = self.encode_prompts(prompts)
        rows = [self._engine.new_row(i, ids) for i, ids in enumerate(prompt_ids)]
        for row in rows:
            row.max_new_tokens = self._new_token_budget(row.index, len(row.ids), max_new_tokens)
        if return_logprobs:
            for row in rows:
                row.result.logprobs = []
        if results is not None:
            results.extend(row.result for row in rows)
        warpers = sampling_warpers(temperature, top_p, top_k, min_p)
        processors = list(logits_processor or ())
        # A private generator: the caller's global RNG is neither read nor reseeded.
        seed = seed if seed is not None or seeds is not None else secrets.randbits(63)
        generator = torch.Generator(device=self.model.device)
        if seed is not None:
            generator.manual_seed(seed)
        for row in rows:
            row.result.seed = seed
        _seed_rows(rows, seeds, seed, self.model.device)
        cache = EvictingKVCache(len(rows), self.model.device)
        self.last_cache = cache
        active = list(rows)

        # prefill (split at recomputed mementos in restart_mode)
        pieces = [self._engine.split_for_restart(ids) for ids in prompt_ids]
        last_logits: list[torch.Tensor | None] = [None] * len(rows)
        for round_index in range(max(len(p) for p in pieces)):
            chunks = [p[round_index] if round_index < len(p) else [] for p in pieces]
            logits = self._engine.forward(cache, active, chunks, step=0)
            for b, chunk in enumerate(chunks):
                if chunk:
                    last_logits[b] = logits[b, len(chunk) - 1]
        for row, live in zip(active, cache.live_tokens(), strict=True):
            row.result.kv_trace.append(live)
        scores = torch.stack([t for t in last_logits if t is not None]).float()

        for step in range(1, max(row.max_new_tokens for row in rows) + 1):
            # taken before the processors run: some modify `scores` in place
            policy_logprobs = torch.log_softmax(scores / (temperature or 1.0), dim=-1) if return_logprobs else None
            next_tokens = self._sample(active, scores, processors, warpers, temperature, generator)
            if policy_logprobs is not None:
                chosen = torch.tensor(next_tokens, device=policy_logprobs.device)[:, None]
                for row, value in zip(active, policy_logprobs.gather(1, chosen).flatten().tolist(), strict=True):
                    row.result.logprobs.append(value)
            finished: list[int] = []
            live_tokens = cache.live_tokens()
            for b, (row, token) in enumerate(zip(active, next_tokens, strict=True)):
                row.result.token_ids.append(token)
                row.ids.append(token)
                delta = text_delta(self.tokenizer, row, stop)
                reason = self._finish_reason(row, token)
                if reason is not None:
                    delta += text_delta(self.tokenizer, row, stop, final=True)
                yield StreamEvent(row.index, token, delta, live_tokens[b], reason)
                if reason is not None:
                    row.result.finish_reason = reason
                    finished.append(b)
            if len(finished) == len(active):
                break
            if finished:
                keep = [b for b in range(len(active)) if b not in finished]
                cache.select_rows(keep)
                active = [active[b] for b in keep]
            logits = self._engine.forward(cache, active, [[row.ids[-1]] for row in active], step=step)
            for row, live in zip(active, cache.live_tokens(), strict=True):
                row.result.kv_trace.append(live)
            scores = logits[:, -1].float()

    def generate(
        self,
        prompts: Prompts,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float | None = None,
        top_k: int | None = None,
        min_p: float | None = None,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        logits_processor: Sequence[LogitsProcessor] | None = None,
        seeds: Sequence[int] | None = None,
        return_logprobs: bool = False,
    ) -> list[GenerationResult]:
        """Generate for a batch of prompts (strings get the chat template; or token id lists / a LongTensor).

        temperature 0 is greedy; top_p / top_k / min_p use transformers' warpers; `seed` makes sampling
        reproducible (None draws one, recorded in each result's `seed`; the global torch RNG is never
        touched); generation of a sequence stops at its EOS / ``<|im_end|>``, at any `stop` string,
        or after `max_new_tokens` (cut, with a warning, where the prompt plus it would run past the
        model's max_position_embeddings; a prompt that fills them raises ValueError).
        `logits_processor`: transformers-style processors, each called per sequence with that
        sequence's ids [1, L] (rows are ragged). `return_logprobs` fills each result's `logprobs` (see
        `GenerationResult`). Returns one `GenerationResult` per prompt, in order.
        """
        results: list[GenerationResult] = []
        for _ in self.stream(
            prompts,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            min_p=min_p,
            seed=seed,
            stop=stop,
            logits_processor=logits_processor,
            results=results,
            seeds=seeds,
            return_logprobs=return_logprobs,
        ):
            pass
        return results

    def _sample(
        self,
        rows: Sequence[Row],
        scores: torch.Tensor,
        processors: Sequence[LogitsProcessor],
        warpers: Any,
        temperature: float,
        generator: torch.Generator,
    ) -> list[int]:
        """Next token of every row, sampled on the device; the `.tolist()` is the step's one device->host copy."""
        if processors:
            per_row = []
            for b, row in enumerate(rows):
                row_scores = scores[b : b + 1]
                ids = torch.tensor([row.ids]).to(scores.device, non_blocking=True)
                for processor in processors:
                    row_scores = processor(ids, row_scores)
                per_row.append(row_scores)
            scores = torch.cat(per_row)
        if self._block_cap is not None:
            # each row's own tracker has read all of row.ids: the cap needs no copy of the ids
            scores = self._block_cap.force_block_end(
                scores, [b for b, row in enumerate(rows) if self._block_cap.at_cap(row.tracker)]
            )
        if temperature == 0:
            return scores.argmax(dim=-1).tolist()
        probabilities = torch.softmax(warpers(None, scores), dim=-1)
        if rows[0].sampler is not None:
            draws = [torch.multinomial(probabilities[b], 1, generator=row.sampler) for b, row in enumerate(rows)]
            return torch.cat(draws).tolist()
        return torch.multinomial(probabilities, 1, generator=generator).flatten().tolist()

    def _finish_reason(self, row: Row, token: int) -> str | None:
        if token in self._stop_ids:
            return "stop"
        if row.hit_stop_string:
            return "stop"
        if len(row.result.token_ids) >= row.max_new_tokens:
            return "length"
        return None


def _seed_rows(rows: Sequence[Row], seeds: Sequence[int] | None, seed: int | None, device: torch.device) -> None:
    """Give each row its own sampling generator (and record its seed) when per-sequence `seeds` are given."""
    if seeds is None:
        return
    if seed is not None:
        raise ValueError("pass either seed (one for the batch) or seeds (one per prompt), not both")
    if len(seeds) != len(rows):
        raise ValueError(f"{len(seeds)} seeds for {len(rows)} prompts")
    for row, row_seed in zip(rows, seeds, strict=True):
        row.sampler = torch.Generator(device=device)
        row.sampler.manual_seed(int(row_seed))
        row.result.seed = int(row_seed)
