"""`MementoGRPOTrainer`: memento-masked log-probs in TRL's layout, one CISPO step, the lower IS clip."""

from __future__ import annotations

import json
import math

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from memento.config import MementoConfig
from memento.eval import Problem, build_prompt
from memento.eval.grading.sandbox import SandboxLimits
from memento.format import IM_END, SpecialIds, render_assistant
from memento.inference import MementoGenerator
from memento.rl import token_logprobs
from memento.rl.data import dataset_rows
from memento.rl.options import RLOptions
from memento.rl.rewards import WeightedReward, as_trl_reward, correctness_reward, each, toy_reward
from memento.rl.run import grpo_config
from memento.rl.trainer import MementoGRPOTrainer, floor_old_logprobs
from memento.toy.task import ToyTask
from memento.toy.train import CHECKPOINT
from tests.conftest import build_tokenizer
from tests.models import save_checkpoint

CONFIG = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)


class FixedRollout:
    """A hand-made group: always returns the same completions (token ids) for the prompts it gets."""

    def __init__(self, prompt_ids: list[int], completions: list[list[int]]) -> None:
        self.prompt_ids = prompt_ids
        self.completions = completions

    def __call__(self, prompts, trainer):
        assert len(prompts) == len(self.completions)
        return {
            "prompt_ids": [self.prompt_ids] * len(prompts),
            "completion_ids": self.completions,
            "logprobs": [[0.0] * len(c) for c in self.completions],
        }


@pytest.fixture(scope="module")
def toy():
    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT, local_files_only=True)
    task = ToyTask()
    (numbers, trace), (_, other) = task.examples(2, seed=17)
    prompt_ids = MementoGenerator.encode_prompts(MementoGenerator(_load(), tokenizer, CONFIG), [trace.prompt])[0]

    def completion(t) -> list[int]:
        return tokenizer.encode(render_assistant(t) + IM_END, add_special_tokens=False)

    # the right trace, and a well-formed trace of another problem (a wrong answer here)
    return tokenizer, trace.prompt, str(task.answer(numbers)), prompt_ids, [completion(trace), completion(other)]


def _load(directory=CHECKPOINT):
    return AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=torch.float32)


def make_trainer(
    tmp_path,
    group,
    *,
    answer: str = "",
    problem: Problem | None = None,
    reward: WeightedReward | None = None,
    model_dir=CHECKPOINT,
    learning_rate: float = 1e-4,
    **options,
) -> MementoGRPOTrainer:
    """A trainer on one problem (a toy one with `answer` unless given) whose rollouts are `group`'s."""
    tokenizer, prompt, _, prompt_ids, completions = group
    problem = problem or Problem(id="p", problem=prompt, answer=answer, kind="toy")
    reward = reward or WeightedReward("toy", each(toy_reward))
    rl = RLOptions(
        model=str(model_dir),
        output=str(tmp_path),
        num_generations=2,
        prompts_per_step=1,
        max_steps=1,
        learning_rate=learning_rate,
        **options,
    )
    return MementoGRPOTrainer(
        model=_load(model_dir),
        reward_funcs=[as_trl_reward(reward, {problem.id: problem})],
        args=grpo_config(rl, [1.0]),
        train_dataset=Dataset.from_list(dataset_rows([problem])),
        processing_class=tokenizer,
        rollout_func=FixedRollout(prompt_ids, completions),
        memento_config=CONFIG,
        min_is_weight=rl.min_is_weight,
        attention=rl.attention,
        rollout_log=tmp_path / "rollouts.jsonl",
    )


def completion_logprobs(model, group) -> list[float]:
    tokenizer, _, _, prompt_ids, completions = group
    special_ids = SpecialIds.from_tokenizer(tokenizer)
    totals = []
    with torch.no_grad():
        for completion in completions:
            ids = torch.tensor([prompt_ids + completion])
            totals.append(float(token_logprobs(model, ids, special_ids, CONFIG)[0, len(prompt_ids) - 1 :].sum()))
    return totals


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["dense", "block-sparse"])
def test_trainer_logprobs_in_trl_layout_equal_token_logprobs(tmp_path, toy, attention):
    tokenizer, _, answer, prompt_ids, completions = toy
    trainer = make_trainer(tmp_path, toy, answer=answer, attention=attention)
    pad = tokenizer.pad_token_id
    prompts = [prompt_ids, prompt_ids[3:]]  # ragged prompts: TRL left-pads them
    completions = [completions[0], completions[1][:-40]]
    width_p, width_c = max(map(len, prompts)), max(map(len, completions))
    input_ids = torch.full((2, width_p + width_c), pad)
    mask = torch.zeros(2, width_p + width_c, dtype=torch.long)
    for b, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        input_ids[b, width_p - len(p) : width_p] = torch.tensor(p)
        input_ids[b, width_p : width_p + len(c)] = torch.tensor(c)
        mask[b, width_p - len(p) : width_p + len(c)] = 1
    with torch.no_grad():
        logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, input_ids, mask, width_c, compute_entropy=True
        )
        special_ids = SpecialIds.from_tokenizer(tokenizer)
        for b, (p, c) in enumerate(zip(prompts, completions, strict=True)):
            reference = token_logprobs(trainer.model, torch.tensor([p + c]), special_ids, CONFIG)[0, len(p) - 1 :]
            assert torch.allclose(logps[b, : len(c)], reference, atol=1e-4)
            assert bool((logps[b, len(c) :] == 0).all()) and bool((entropies[b, : len(c)] > 0).all())
            causal = token_logprobs(trainer.model, torch.tensor([p + c]), special_ids, MementoConfig.disabled())
            assert float((causal[0, len(p) - 1 :] - reference).abs().max()) > 1e-3


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    """A tiny random Qwen3 with a BPE tokenizer, a prompt, and two unrelated memento completions:
    the first answers 7 (rewarded), the second 42. Both are about equally (im)probable."""
    tokenizer = build_tokenizer()
    directory = tmp_path_factory.mktemp("tiny-qwen3")
    save_checkpoint(directory, tokenizer, seed=4)
    prompt = "add 3 and 4"
    prompt_ids = tokenizer.encode(f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n")
    texts = [
        "<think>\n<|block_start|>we add 3 and 4<|block_end|>\n<|summary_start|>7<|summary_end|>\n</think>\n\n7",
        "<think>\n<|block_start|>Let me check: 12 + 30<|block_end|>\n<|summary_start|>so the sum is<|summary_end|>\n"
        "<|block_start|>Wait, maybe not<|block_end|>\n<|summary_start|>done<|summary_end|>\n</think>\n\n42",
    ]
    completions = [tokenizer.encode(text + IM_END) for text in texts]
    return tokenizer, prompt, "7", prompt_ids, completions, directory


@pytest.mark.slow
def test_one_cispo_step_moves_the_policy_toward_the_rewarded_completion(tmp_path, group):
    trainer = make_trainer(tmp_path, group[:5], answer="7", model_dir=group[5])
    right_before, wrong_before = completion_logprobs(trainer.model, group[:5])
    trainer.train()
    right_after, wrong_after = completion_logprobs(trainer.model, group[:5])
    assert right_after > right_before + 1e-3
    assert wrong_after < wrong_before - 1e-3
    rewards = (tmp_path / "rollouts.jsonl").read_text().splitlines()
    assert len(rewards) == 2 and '"toy": 1.0' in rewards[0] and '"toy": 0.0' in rewards[1]
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert {"reward", "reward_std", "kl", "cispo_clip_ratio", "completions/mean_length"} <= logged


@pytest.mark.slow
def test_a_code_problem_rewards_the_completion_whose_code_passes_its_tests(tmp_path, group):
    """Same group shape, a code problem: the first completion's function passes the tests, the second
    loops forever (stopped by the sandbox, reward 0); the step moves the policy toward the first."""
    tokenizer, _, _, prompt_ids, _, directory = group
    problem = Problem(
        id="add",
        problem="def add(a, b):",
        answer="",
        kind="code",
        tests="def check(candidate):\n    assert candidate(3, 4) == 7\n",
        entry_point="add",
    )
    thinking = (
        "<think>\n<|block_start|>we add a and b<|block_end|>\n<|summary_start|>return a+b<|summary_end|>\n</think>\n\n"
    )
    texts = [
        thinking + "```python\ndef add(a, b):\n    return a + b\n```",
        thinking + "```python\ndef add(a, b):\n    while True:\n        pass\n```",
    ]
    code_group = (tokenizer, build_prompt(problem), "", prompt_ids, [tokenizer.encode(t + IM_END) for t in texts])
    limits = SandboxLimits(timeout_s=2.0, memory_mb=512)
    reward = WeightedReward("correct", correctness_reward("auto", limits=limits))
    trainer = make_trainer(tmp_path, code_group, problem=problem, reward=reward, model_dir=directory)
    right_before, wrong_before = completion_logprobs(trainer.model, code_group)
    trainer.train()
    right_after, wrong_after = completion_logprobs(trainer.model, code_group)
    assert right_after > right_before + 1e-3 and wrong_after < wrong_before - 1e-3
    rollouts = [json.loads(line) for line in (tmp_path / "rollouts.jsonl").read_text().splitlines()]
    assert [(r["problem_id"], r["rewards"]["correct"]) for r in rollouts] == [("add", 1.0), ("add", 0.0)]


@pytest.mark.slow
def test_equal_rewards_leave_the_policy_unchanged(tmp_path, group):
    trainer = make_trainer(tmp_path, group[:5], answer="5", model_dir=group[5])  # neither completion is right
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    for name, parameter in trainer.model.named_parameters():
        assert torch.equal(parameter, before[name]), name


def test_the_lower_clip_floors_the_importance_weight():
    new = torch.tensor([[-1.0, -2.0, -3.0]])
    old = torch.tensor([[-0.5, -2.0, -1.0]])  # weights exp(new - old): 0.61, 1.0, 0.14
    floored = floor_old_logprobs(old, new, 0.2)
    weights = torch.exp(new - floored)
    assert torch.allclose(weights, torch.tensor([[math.exp(-0.5), 1.0, 0.2]]))
    assert torch.equal(floor_old_logprobs(old, new, 0.0), old)  # 0: TRL's upper-only clip
