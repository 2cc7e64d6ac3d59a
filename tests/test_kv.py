from __future__ import annotations

import bisect

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig, Qwen3Config

from memento.attention import BlockTracker, visibility_mask
from memento.config import MementoConfig
from memento.counting import load_tokenizer
from memento.kv import KVGeometry, memento_to_block_ratio, simulate
from memento.kv_report import compare_traces
from tests.conftest import REAL_TRACES
from tests.test_attention import ALL_CONFIGS, IDS, PLAIN, SEQUENCE, cfg, memento_sequences


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("qwen3-8b", 147_456),
        ("qwen3-32b", 262_144),
        ("phi-4-reasoning", 204_800),
        ("olmo-3-7b-think", 524_288),
    ],
)
def test_preset_bytes_per_token(name, expected):
    assert KVGeometry.preset(name).bytes_per_token == expected


def test_unknown_preset_lists_choices():
    with pytest.raises(ValueError, match="qwen3-8b"):
        KVGeometry.preset("gpt-5")


def test_olmo_sliding_layers_cap_at_window():
    olmo = KVGeometry.preset("olmo-3-7b-think")
    assert sum(w is not None for w in olmo.sliding_windows) == 24
    per_layer = olmo.bytes_per_token_per_layer
    live = list(range(10_000))
    # 8 full layers hold all 10,000 tokens; 24 sliding layers hold the last 4,096.
    assert olmo.cache_bytes(live, 9_999) == (8 * 10_000 + 24 * 4_096) * per_layer
    assert olmo.cache_bytes(list(range(100)), 99) == 100 * olmo.bytes_per_token


def test_from_config_object_and_checkpoint_dir(tmp_path):
    qwen = Qwen3Config(
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        hidden_size=64,
        dtype="float32",
    )
    geometry = KVGeometry.from_config(qwen)
    assert (geometry.num_layers, geometry.num_kv_heads, geometry.head_dim) == (3, 2, 16)
    assert geometry.bytes_per_token == 2 * 3 * 2 * 16 * 4
    llama = LlamaConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=64)
    llama.save_pretrained(tmp_path)
    loaded = KVGeometry.from_config(tmp_path, bytes_per_element=2)
    assert (loaded.num_kv_heads, loaded.head_dim, loaded.bytes_per_token) == (4, 16, 2 * 2 * 4 * 16 * 2)
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        KVGeometry.from_config(tmp_path / "missing")


def test_from_config_reads_sliding_layer_types():
    qwen = Qwen3Config(num_hidden_layers=4, use_sliding_window=True, sliding_window=8, max_window_layers=2)
    windows = KVGeometry.from_config(qwen).sliding_windows
    assert windows is not None and windows.count(8) == sum(t == "sliding_attention" for t in qwen.layer_types)


GEOMETRY = KVGeometry(num_layers=2, num_kv_heads=1, head_dim=4, bytes_per_element=2)


def test_simulate_counts_peak_before_eviction_and_auc():
    report = simulate(SEQUENCE[:14], PLAIN, GEOMETRY, cfg(), prompt_length=1)
    # Block 0's 2 content tokens leave after step 7, block 1's one token after step 13.
    assert report.occupancy == [1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 10, 11, 11]
    assert report.peak_tokens == 12  # step 13 writes <|summary_end|> with block 1 still cached
    assert report.peak_bytes == 12 * GEOMETRY.bytes_per_token
    assert report.num_evictions == 2 and report.evicted_tokens == 3
    assert report.auc_gb_ktok == pytest.approx(sum(report.occupancy[1:]) * GEOMETRY.bytes_per_token / 1e12)
    assert [(b.block_tokens, b.memento_tokens) for b in report.blocks] == [(2, 1), (1, 1)]
    assert [b.memento_to_block_tokens for b in report.blocks] == [0.5, 1.0]
    assert report.memento_to_block_tokens == pytest.approx(2 / 3)  # all mementos / all blocks, one direction


def test_compression_is_memento_over_block_in_every_output():
    comparisons = compare_traces(REAL_TRACES, load_tokenizer(None), KVGeometry.preset("qwen3-8b"), cfg())
    blocks = [b for t in comparisons.traces for b in t.memento.blocks]
    overall = comparisons.overall()
    assert overall["memento_to_block_tokens"] == pytest.approx(
        sum(b.memento_tokens for b in blocks) / sum(b.block_tokens for b in blocks)
    )
    # the authors' traces compress like the paper's (median 0.16-0.23 in characters; ~6x in tokens)
    assert 0.05 < overall["memento_to_block_tokens"] < 0.4
    assert 0.05 < overall["memento_to_block_chars_median"] < 0.4
    trace = comparisons.to_dict()["traces"][0]["memento"]
    assert trace["memento_to_block_tokens"] == comparisons.traces[0].memento.memento_to_block_tokens
    assert {"memento_to_block_tokens", "memento_to_block_chars"} <= set(trace["blocks"][0])
    assert memento_to_block_ratio(3, 0) is None


def test_simulate_equals_mask_row_sums_and_vanilla_is_causal():
    sequence = SEQUENCE * 3
    for config in (cfg(), cfg(mask_delimiters=True), cfg(keep_last_n_blocks=1)):
        report = simulate(sequence, PLAIN, GEOMETRY, config)
        mask = visibility_mask(sequence, PLAIN, config)
        # occupancy before each step's evictions is what that step's query attends to
        before = [int(n) for n in mask.sum(dim=1)]
        assert report.peak_tokens == max(before)
        assert all(after <= row for after, row in zip(report.occupancy, before, strict=True))
    vanilla = simulate(sequence, PLAIN, GEOMETRY, MementoConfig.disabled())
    assert vanilla.occupancy == list(range(1, len(sequence) + 1)) and vanilla.num_evictions == 0


def test_simulate_without_compaction_keeps_memory():
    report = simulate(SEQUENCE, PLAIN, GEOMETRY, cfg(compact_on_summary_end=False))
    assert report.peak_tokens == len(SEQUENCE) and report.num_evictions == 0


def test_simulate_tensor_and_bad_prompt_length():
    assert simulate(torch.tensor(SEQUENCE[:14]), PLAIN, GEOMETRY, cfg()).peak_tokens == 12
    with pytest.raises(ValueError, match="prompt_length"):
        simulate(SEQUENCE, PLAIN, GEOMETRY, cfg(), prompt_length=99)


def _token_by_token(ids, special_ids, geometry, config, assistant_start):
    """What `simulate` measures, one `BlockTracker.feed` per token (as it did before runs were taken whole)."""
    tracker = BlockTracker(special_ids, config, assistant_start=assistant_start)
    live, occupancy, occupancy_bytes, peaks, evictions = [], [], [], [0, 0], [0, 0]
    for position, token in enumerate(ids):
        step = tracker.feed(token)
        live.append(position)
        peaks = [max(peaks[0], len(live)), max(peaks[1], geometry.cache_bytes(live, position))]
        for span in step.evicted:
            lo, hi = bisect.bisect_left(live, span.start), bisect.bisect_left(live, span.stop)
            del live[lo:hi]
            evictions = [evictions[0] + 1, evictions[1] + hi - lo]
        occupancy.append(len(live))
        occupancy_bytes.append(geometry.cache_bytes(live, position))
    return occupancy, occupancy_bytes, peaks, evictions


SLIDING = KVGeometry(2, 1, 4, sliding_windows=(3, None))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sequence=memento_sequences(),
    run=st.integers(1, 40),
    config=st.sampled_from(ALL_CONFIGS),
    chatml=st.booleans(),
    assistant_start=st.none() | st.integers(0, 12),
    sliding=st.booleans(),
)
def test_simulate_takes_runs_between_markers_whole_as_token_by_token(
    sequence, run, config, chatml, assistant_start, sliding
):
    """Item 16 of issue 34: the runs of plain tokens between markers, taken whole, give every figure that feeding
    them one by one gives (occupancy and bytes at every step, peaks, evictions), prompt or not, any rule."""
    ids = [token for t in sequence for token in ([t] * run if t in (1, 2, 7) else [t])]  # longer plain runs
    geometry = SLIDING if sliding else GEOMETRY
    report = simulate(ids, IDS if chatml else PLAIN, geometry, config, prompt_length=0, assistant_start=assistant_start)
    occupancy, occupancy_bytes, peaks, evictions = _token_by_token(
        ids, IDS if chatml else PLAIN, geometry, config, assistant_start
    )
    assert report.occupancy == occupancy and report.occupancy_bytes == occupancy_bytes
    assert [report.peak_tokens, report.peak_bytes] == peaks
    assert [report.num_evictions, report.evicted_tokens] == evictions


def test_simulate_reads_a_prompt_token_by_token_until_the_assistant_header():
    """A plain run inside a ChatML prompt can complete the assistant header: it is fed token by token, so the
    blocks after the header are found and evicted exactly as fed one by one."""
    from tests.models import ASSISTANT, BE, BS, IM_END, IM_START, SE, SS, USER

    ids = [IM_START, USER, 1, 1, 1, IM_END, IM_START, ASSISTANT, BS, 2, 2, BE, SS, 3, SE, BS, 4, BE, SS, 5, SE, 7]
    report = simulate(ids, IDS, GEOMETRY, cfg(), prompt_length=0)
    occupancy, _, _, evictions = _token_by_token(ids, IDS, GEOMETRY, cfg(), None)
    assert report.occupancy == occupancy and [report.num_evictions, report.evicted_tokens] == evictions == [2, 3]
