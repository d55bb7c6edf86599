"""The seed-protocol presets: what each grid holds, that run directories never
collide, that sweep offers them, and that every `-small` preset trains end to end."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

import winact_jax as wa
from experiments import presets_seed, sweep

SMALL = ("stl10-bn-small", "lenet-grid-small", "label-noise-small", "triangular-lr-small")
FULL = ("stl10-bn", "lenet-grid", "label-noise", "triangular-lr")


@pytest.fixture(scope="module")
def expanded():
    return {name: sweep.expand(grids, Path("runs") / name) for name, grids in presets_seed.presets().items()}


def test_sweep_offers_every_preset_of_this_module():
    assert set(presets_seed.presets()) <= set(sweep.PRESETS)
    assert set(SMALL + FULL + ("mnist5k-table", "mnist5k-table-resnet20", "mnist5k-table-resnet38")) == set(
        presets_seed.presets()
    )


def test_run_directories_are_distinct_within_each_preset(expanded):
    for name, configs in expanded.items():
        workdirs = [c.workdir for c in configs]
        assert len(workdirs) == len(set(workdirs)), name
        assert all(Path(w).parent == Path("runs") / name for w in workdirs)


def test_run_counts(expanded):
    window = len(wa.names("window"))  # 9
    assert len(expanded["stl10-bn"]) == (4 + window) * 2 * 10
    assert len(expanded["lenet-grid"]) == (3 + window) * 4 * 4 * 3
    assert len(expanded["label-noise"]) == (4 + window) * 5 * 3
    assert len(expanded["triangular-lr"]) == (4 + window) * 2 * 3
    assert [len(expanded[name]) for name in SMALL] == [12, 8, 10, 4]


def test_mnist5k_table_has_every_activation_tiled_and_centered(expanded):
    configs = expanded["mnist5k-table"]
    assert len(configs) == (7 + 2 * len(wa.names("window"))) * 3
    assert {(c.dataset, c.model, c.width, c.epochs, c.schedule) for c in configs} == {
        ("mnist5k", "lenet", None, 15, "cosine")
    }
    baselines = {"relu", "leaky_relu", "gelu", "silu", "mish", "prelu", "frelu"}
    assert {c.act for c in configs} == baselines | set(wa.names("window"))
    windowed = Counter((c.act, c.window_mode, c.window) for c in configs if c.act not in baselines)
    assert set(windowed) == {(a, m, w) for a in wa.names("window") for m, w in (("tiled", 4), ("centered", 3))}
    assert set(windowed.values()) == {3}  # three seeds each
    assert all(c.window is None and c.window_mode is None for c in configs if c.act in baselines)
    # the ResNet versions are the same grid on ResNet-20 and on ResNet-38 (a GPU job)
    for name, model in (
        ("mnist5k-table-resnet20", ("resnet20", 1.0, 7)),
        ("mnist5k-table-resnet38", ("resnet38", 1.0, 10)),
    ):
        resnet = expanded[name]
        assert {(c.model, c.width, c.epochs) for c in resnet} == {model}
        assert [(c.act, c.window, c.window_mode, c.seed) for c in resnet] == [
            (c.act, c.window, c.window_mode, c.seed) for c in configs
        ]


def test_small_presets_run_on_mnist5k_and_full_ones_on_the_seeds_data(expanded):
    for name in SMALL:
        assert {c.dataset for c in expanded[name]} == {"mnist5k"}, name
    assert {c.dataset for c in expanded["stl10-bn"]} == {"stl10"}
    for name in ("lenet-grid", "label-noise", "triangular-lr"):
        assert {c.dataset for c in expanded[name]} == {"cifar10"}, name
    for name in SMALL + FULL:
        assert all(c.progress is False for c in expanded[name]), name


def test_stl10_bn_is_the_seed_protocol(expanded):
    configs = expanded["stl10-bn"]
    assert {(c.model, c.optimizer, c.momentum, c.weight_decay, c.batch_size, c.epochs) for c in configs} == {
        ("stl_net", "sgd", 0.9, 5e-4, 64, 30)
    }
    assert Counter(c.normalization for c in configs) == {"batch": 130, "none": 130}
    assert {c.seed for c in configs} == set(range(10))
    assert {c.act for c in configs} == {"relu", "gelu", "mish", "elu", *wa.names("window")}
    small = expanded["stl10-bn-small"]
    assert {c.normalization for c in small} == {"batch", "none"} and {c.model for c in small} == {"stl_net"}


def test_lenet_grid_is_batch_size_by_learning_rate(expanded):
    configs = expanded["lenet-grid"]
    assert {(c.model, c.optimizer, c.epochs) for c in configs} == {("lenet", "sgd", 25)}
    pairs = Counter((c.batch_size, c.learning_rate) for c in configs)
    assert set(pairs) == {(b, lr) for b in (24, 40, 64, 128) for lr in (1e-1, 1e-2, 1e-3, 1e-4)}
    assert len(set(pairs.values())) == 1  # every cell has every activation and seed
    assert {c.act for c in configs} == {"mish", "elu", "gelu", *wa.names("window")}


def test_label_noise_sweeps_the_seed_fractions(expanded):
    for name in ("label-noise", "label-noise-small"):
        configs = expanded[name]
        assert sorted({c.label_noise for c in configs}) == [0.0, 0.08, 0.16, 0.32, 0.64], name
    assert all(c.label_noise == 0 for name in ("stl10-bn", "lenet-grid", "triangular-lr") for c in expanded[name])


def test_triangular_lr_sits_beside_the_constant_one(expanded):
    for name in ("triangular-lr", "triangular-lr-small"):
        configs = expanded[name]
        assert Counter(c.schedule for c in configs) == {"constant": len(configs) // 2, "triangular": len(configs) // 2}
        # whole cycles, so each triangular run ends at its low point
        assert all(c.epochs % c.cycle_epochs == 0 for c in configs if c.schedule == "triangular"), name


@pytest.mark.slow
@pytest.mark.parametrize("name", SMALL)
def test_small_preset_trains_end_to_end(name, tmp_path):
    """A cut of each `-small` preset through `sweep.execute`, as `--preset NAME` runs
    it: the first and last value of the setting it studies, 64 examples, 1 epoch."""
    configs = sweep.expand(presets_seed.presets()[name], tmp_path)
    studied = {
        "stl10-bn-small": "normalization",
        "lenet-grid-small": "learning_rate",
        "label-noise-small": "label_noise",
        "triangular-lr-small": "schedule",
    }[name]
    first_act, first_seed = configs[0].act, configs[0].seed
    chosen = {}
    for config in configs:
        if config.act == first_act and config.seed == first_seed:
            chosen.setdefault(getattr(config, studied), config)
    values = list(chosen)
    assert len(values) >= 2
    runs = [dataclasses.replace(chosen[v], limit_train=64, epochs=1) for v in (values[0], values[-1])]
    outcomes, failures = sweep.execute(runs)
    assert not failures, failures
    assert sum(outcomes.values()) == len(runs)
    for config in runs:
        summary = json.loads((Path(config.workdir) / "summary.json").read_text())
        assert summary["status"] in ("completed", "diverged"), summary
