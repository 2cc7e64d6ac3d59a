"""`MementoGRPOTrainer`: TRL's GRPOTrainer whose log-prob forwards see what the rollout saw.

Three overrides, no fork:

* `_get_per_token_logps_and_entropies` (policy, old policy and reference forwards): TRL's rows are
  [left-padded prompt | right-padded completion]; each is packed to the left so positions stay
  logical, then run with the memento mask (`memento_inputs`) through TRL's fused LM head.
* `_compute_loss`: CISPO's lower importance-weight clip. TRL clamps the weight from above only
  (``min(r, epsilon_high)``); MiniMax-M1's CISPO clips to [1 - eps_low, 1 + eps_high]. The floor is
  applied by lowering ``old_per_token_logps`` on a copy of the batch so that ``r >= min_is_weight``
  before TRL's own CISPO line runs. On-policy steps (``num_iterations=1``, no reuse of rollouts)
  have r = 1 exactly and neither bound acts.
* `_calculate_rewards`: logs blocks and peak KV per completion, and every reward of every
  rollout to ``rollouts.jsonl``; `_generate_and_score_completions` logs the largest gap between the
  rollout's log-probs and the training forward's when both exist (``num_iterations > 1``).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

# TRL imports the installed vLLM, which it is not used with here: its version warning, and the CPU build's
# "Triton is installed, but doesn't include CPU backend" log line, would come before every `memento rl` message
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="TRL currently supports vLLM")
    logging.getLogger("vllm.triton_utils.importing").setLevel(logging.ERROR)
    from trl import GRPOTrainer

from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.rl.data import PROBLEM_ID
from memento.rl.logprobs import memento_inputs
from memento.rl.rewards import COMPLETION_TEXT
from memento.rl.rollout import BLOCKS, KV_PEAK_TOKENS
from memento.training.trainer import block_sparse_implementation


def floor_old_logprobs(old: torch.Tensor, new: torch.Tensor, min_weight: float) -> torch.Tensor:
    """Lower `old` where needed so that exp(new - old) >= min_weight (a floor on the IS weight)."""
    if min_weight <= 0:
        return old
    return torch.minimum(old, new.detach() - math.log(min_weight))


@contextmanager
def attention_implementation(model: Any, name: str | None) -> Iterator[None]:
    """Run the block with the model's attention implementation switched to `name` (None: unchanged)."""
    previous = model.config._attn_implementation
    if name is None or name == previous:
        yield
        return
    model.set_attn_implementation(name)
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


class MementoGRPOTrainer(GRPOTrainer):
    """GRPO-family trainer (use ``loss_type="cispo"``) for memento models.

    Args (beyond GRPOTrainer's):
        memento_config: the attention rule of the training forward; must match the rollouts'.
        min_is_weight: CISPO's lower clip of the importance weight (0 = TRL's upper-only clip).
        attention: "dense" (an L x L mask) or "block-sparse" (BlockMask; flex_attention on CUDA, our
            tiled kernel on CPU) for the training forward.
        rollout_log: JSONL file that receives one line per rollout (rewards, blocks, peak KV).
        rollout_engine: the in-process vLLM engine the ``rollout_func`` samples with
            (`memento.rl.vllm_engine.RolloutEngine`), or None (rollouts by transformers). Given, the
            trainer runs TRL's vLLM path with its own ``use_vllm=False`` config: TRL syncs the policy's
            weights into the engine before the first generation after each optimizer step and
            applies its vLLM importance-sampling correction (the memento-masked forward's log-probs
            against the engine's sampling log-probs, logged as ``sampling/sampling_logp_difference``).
    """

    def __init__(
        self,
        *args: Any,
        memento_config: MementoConfig,
        min_is_weight: float = 0.0,
        attention: str = "dense",
        rollout_log: str | Path | None = None,
        rollout_engine: Any = None,
        **kwargs: Any,
    ) -> None:
        if memento_config.restart_mode:
            raise ValueError("restart_mode is an inference ablation; RL trains with restart_mode=false")
        if attention not in ("dense", "block-sparse"):
            raise ValueError(f"attention must be 'dense' or 'block-sparse', got {attention!r}")
        if not 0 <= min_is_weight < 1:
            raise ValueError(f"min_is_weight must be in [0, 1), got {min_is_weight}")
        self.memento_config = memento_config
        self.min_is_weight = min_is_weight
        self.training_attention = block_sparse_implementation() if attention == "block-sparse" else None
        self.rollout_log = Path(rollout_log) if rollout_log is not None else None
        self._cispo_inputs: dict[str, Any] | None = None
        with warnings.catch_warnings():  # rollout_func is TRL's experimental hook; we rely on it knowingly
            warnings.filterwarnings("ignore", message="You are using 'rollout_func'")
            super().__init__(*args, **kwargs)
        self.special_ids = SpecialIds.from_tokenizer(self._tokenizer)
        if rollout_engine is not None:
            if self.args.use_vllm:
                raise ValueError("rollout_engine replaces TRL's own vLLM: build the GRPOConfig with use_vllm=False")
            from memento.rl.vllm_rollout import WeightSync

            # TRL's vLLM path, minus the engine TRL would build: `_generate` syncs `vllm_generation`'s
            # weights when the step moved, `_generate_and_score_completions` computes the IS correction
            self.use_vllm = True
            self.vllm_mode = "colocate"
            self.vllm_generation = WeightSync(rollout_engine, self)
            self._last_loaded_step = -1
        if self.loss_type != "cispo" and min_is_weight > 0:
            raise ValueError("min_is_weight is CISPO's lower clip: use it with loss_type='cispo'")

    # ------------------------------------------------------------------------------------------
    # Log-probs under the memento rule

    def _get_per_token_logps_and_entropies(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **multimodal: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """[B, P+C] rows (prompt left-padded, completion right-padded) -> log-probs [B, C], entropies, None."""
        if any(value is not None for value in multimodal.values()):
            raise NotImplementedError("memento RL is text-only: multimodal inputs are not supported")
        if compute_aux_loss:
            raise NotImplementedError("memento RL does not add MoE load-balancing losses")
        batch_size = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            chunk = slice(start, start + batch_size)
            chunk_logps, chunk_entropy = self._memento_logps(
                model, input_ids[chunk], attention_mask[chunk], logits_to_keep, compute_entropy
            )
            logps.append(chunk_logps)
            entropies.append(chunk_entropy)
        logps_all = torch.cat(logps)
        if self._cispo_inputs is not None and compute_entropy:  # the policy forward inside _compute_loss
            self._apply_is_floor(logps_all)
        return logps_all, torch.cat(entropies) if compute_entropy else None, None

    def _memento_logps(
        self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_length: int, entropy: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        prompt_width = input_ids.size(1) - completion_length
        valid = attention_mask.bool()
        order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)  # real tokens first, in order
        lengths = valid.sum(dim=1)
        width = int(lengths.max())
        packed = input_ids.gather(1, order)[:, :width]
        positions = torch.arange(width, device=input_ids.device)
        packed_mask = (positions[None, :] < lengths[:, None]).long()
        prompt_lengths = valid[:, :prompt_width].sum(dim=1)
        completion = (positions[None, :] >= prompt_lengths[:, None]) & packed_mask.bool()
        unwrapped = self.accelerator.unwrap_model(model)
        with attention_implementation(unwrapped, self.training_attention):
            inputs = memento_inputs(  # the mask's form follows the implementation switched to above
                unwrapped,
                packed,
                self.special_ids,
                self.memento_config,
                attention_mask=packed_mask,
                pad_token_id=int(self._tokenizer.pad_token_id or 0),
            )
            labels = inputs["input_ids"].masked_fill(~completion.to(inputs["input_ids"].device), -100)
            with self.accelerator.autocast():
                output = model(**inputs, labels=labels, fused_lm_head=True)
        # completion column j sits at packed index rank(P + j); its log-prob is entry rank - 1
        rank = valid.long().cumsum(dim=1)[:, prompt_width:] - 1
        index = (rank - 1).clamp(min=0).to(output.log_probs.device)
        keep = valid[:, prompt_width:].to(output.log_probs.device)
        logps = torch.where(keep, output.log_probs.gather(1, index), 0.0)
        entropies = torch.where(keep, output.entropy.gather(1, index), 0.0) if entropy else None
        return logps, entropies

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        old, sampled = output.get("old_per_token_logps"), output.get("sampling_per_token_logps")
        if old is not None and sampled is not None:  # computed when rollouts are reused (num_iterations > 1)
            mask = output["completion_mask"].bool()
            gap = (old - sampled).abs()[mask]
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["memento/sampling_logp_gap_max"].append(gap.max().item() if gap.numel() else 0.0)
        return output

    # ------------------------------------------------------------------------------------------
    # CISPO's lower clip

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        if self.min_is_weight > 0 and inputs.get("old_per_token_logps") is not None:
            inputs = dict(inputs)  # the buffered batch is reused across iterations: never edit it
            self._cispo_inputs = inputs
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._cispo_inputs = None

    def _apply_is_floor(self, logps: torch.Tensor) -> None:
        inputs = self._cispo_inputs
        assert inputs is not None
        self._cispo_inputs = None
        old = inputs["old_per_token_logps"]
        floored = floor_old_logprobs(old, logps, self.min_is_weight)
        inputs["old_per_token_logps"] = floored
        mask = inputs["completion_mask"] * inputs.get("tool_mask", 1)
        clipped = ((floored < old) & mask.bool()).float()
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["cispo_clip_ratio/low"].append((clipped.sum() / mask.sum().clamp(min=1)).item())

    # ------------------------------------------------------------------------------------------
    # Rewards: memento metrics and the per-rollout log

    def _calculate_rewards(
        self, inputs: list[dict[str, Any]], prompts: list[Any], completions: list[Any], completion_ids_list: list[Any]
    ) -> torch.Tensor:
        for row, ids in zip(inputs, completion_ids_list, strict=True):
            # graders read the answer after </think>: TRL's own decoding drops special tokens
            if COMPLETION_TEXT not in row:
                row[COMPLETION_TEXT] = self._tokenizer.decode(ids, skip_special_tokens=False)
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        mode = "train" if self.model.training else "eval"
        blocks = [row[BLOCKS] for row in inputs if BLOCKS in row]
        peaks = [row[KV_PEAK_TOKENS] for row in inputs if KV_PEAK_TOKENS in row]
        if blocks:
            self._metrics[mode]["memento/blocks_per_completion"].append(statistics.mean(blocks))
        if peaks:
            self._metrics[mode]["memento/kv_peak_tokens_mean"].append(statistics.mean(peaks))
            self._metrics[mode]["memento/kv_peak_tokens_max"].append(max(peaks))
        if self.rollout_log is not None:
            self._write_rollouts(inputs, prompts, completions, completion_ids_list, rewards_per_func, mode)
        return rewards_per_func

    def _write_rollouts(
        self,
        inputs: list[dict[str, Any]],
        prompts: list[Any],
        completions: list[Any],
        completion_ids_list: list[Any],
        rewards_per_func: torch.Tensor,
        mode: str,
    ) -> None:
        assert self.rollout_log is not None
        offset = self.accelerator.process_index * len(prompts)
        local = rewards_per_func[offset : offset + len(prompts)].tolist()
        weights = self.reward_weights.tolist()
        path = self.rollout_log
        if self.accelerator.process_index:
            path = path.with_name(f"{path.stem}.rank{self.accelerator.process_index}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            for index, row in enumerate(inputs):
                rewards = dict(zip(self.reward_func_names, local[index], strict=True))
                record = {
                    "step": self.state.global_step,
                    "mode": mode,
                    PROBLEM_ID: row.get(PROBLEM_ID),
                    "prompt": prompts[index],
                    "completion": row.get(COMPLETION_TEXT, completions[index]),
                    "rewards": rewards,
                    "reward": sum(w * r for w, r in zip(weights, local[index], strict=True) if not math.isnan(r)),
                    "completion_tokens": len(completion_ids_list[index]),
                    BLOCKS: row.get(BLOCKS),
                    KV_PEAK_TOKENS: row.get(KV_PEAK_TOKENS),
                }
                handle.write(json.dumps(record) + "\n")
