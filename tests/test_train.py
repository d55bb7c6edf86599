"""The training loop (`winact_jax.train`): learning, data parallelism, resumption,
divergence, and the run directory. In-process, on the 4 CPU devices that
conftest.py sets up; small models and few steps keep it fast."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import winact_jax.data
from winact_jax.sharding import make_mesh, replicate, to_host
from winact_jax.train import (
    ConfigError,
    NotApplicableError,
    Status,
    TrainConfig,
    loop,
    optim,
    steps,
    train_and_evaluate,
)
from winact_jax.train.config import default_epochs
from winact_jax.train.loop import _training_split, divergence_reason
from winact_jax.train.optim import make_optimizer, make_schedule
from winact_jax.train.state import create_model, create_train_state

pytestmark = pytest.mark.slow

# A ResNet-20 at a quarter width (4/8/16 channels): batch norm included, compiles fast.
TINY_RESNET = dict(model="resnet20", width=0.25)


@pytest.fixture(scope="module")
def digits():
    return winact_jax.data.load("digits")


def tiny(tmp_path, name="run", **overrides) -> TrainConfig:
    """A config for a run of seconds: a tiny model, 256 training examples (4 steps an epoch)."""
    settings = dict(act="relu", **TINY_RESNET, limit_train=256, epochs=2, progress=False, workdir=str(tmp_path / name))
    settings.update(overrides)
    return TrainConfig(**settings)


def params_of(result):
    return to_host(result.state.params), to_host(result.state.model_state)


def assert_trees_close(actual, expected, **tolerance):
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, err_msg=jax.tree_util.keystr(path), **tolerance)


def test_a_few_steps_lower_the_loss(digits):
    config = TrainConfig(act="nelu", model="lenet", learning_rate=1e-2, workdir="unused")
    mesh = make_mesh()
    tx = make_optimizer(config, make_schedule(config, total_steps=10))
    model = create_model(config, digits.num_classes, digits.image_shape[:2])
    model_def, state = create_train_state(model, tx)
    state = replicate(state, mesh)
    train_step = steps.make_train_step(model_def, tx, digits, mesh, seed=0, augment_images=False)
    split = winact_jax.data.put_on_device(digits.train, mesh)
    batches = winact_jax.data.epoch_batches(0, 0, len(digits.train), 64, mesh=mesh)
    keep_going = steps.stop_flags_for(mesh, False)
    losses = []
    for _ in range(8):  # the same batch again and again
        state, metrics = train_step(state, split, batches, 0, 0, keep_going)
        losses.append(float(to_host(metrics.loss)))
    assert losses[-1] < 0.8 * losses[0], losses
    assert int(to_host(state.step)) == 8
    assert not bool(to_host(metrics.stop))


def test_one_step_on_four_devices_uses_the_global_batch(digits):
    """Loss and batch-norm statistics of a step sharded over 4 devices are those of
    the whole batch on 1 device (per-device statistics would differ by ~10%)."""
    assert jax.device_count() == 4, "conftest.py sets up 4 CPU devices"
    config = TrainConfig(act="relu", **TINY_RESNET, workdir="unused")
    outputs = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = make_mesh(devices)
        tx = make_optimizer(config, config.learning_rate)
        model_def, state = create_train_state(create_model(config, 10, (32, 32)), tx)
        train_step = steps.make_train_step(model_def, tx, digits, mesh, seed=0, augment_images=False)
        split = winact_jax.data.put_on_device(digits.train, mesh)
        batches = winact_jax.data.epoch_batches(0, 0, len(digits.train), 64, mesh=mesh)
        state, metrics = train_step(replicate(state, mesh), split, batches, 0, 0, steps.stop_flags_for(mesh, False))
        assert state.params["head"]["kernel"].sharding.is_fully_replicated
        outputs.append((to_host(metrics.loss), to_host(state.model_state)))
    (loss_one, stats_one), (loss_four, stats_four) = outputs
    np.testing.assert_allclose(loss_four, loss_one, rtol=1e-6)
    assert_trees_close(stats_four, stats_one, rtol=1e-5, atol=1e-6)


def test_four_devices_end_with_the_parameters_of_one(tmp_path):
    settings = dict(optimizer="sgd", learning_rate=0.01, max_steps=3, augment=True)
    one = train_and_evaluate(tiny(tmp_path, "one", num_devices=1, **settings))
    four = train_and_evaluate(tiny(tmp_path, "four", **settings))
    assert (one.summary.num_devices, four.summary.num_devices) == (1, 4)
    assert one.summary.global_step == four.summary.global_step == 3
    # Equal up to the order of floating-point reductions, which this tiny batch-norm
    # net amplifies to ~3e-5 in 3 steps; the steps move parameters by ~1e-2.
    tolerance = dict(rtol=1e-3, atol=2e-4)
    assert_trees_close(params_of(four), params_of(one), **tolerance)
    # ... and the comparison is not vacuous: one step fewer is far outside it.
    fewer = train_and_evaluate(tiny(tmp_path, "fewer", num_devices=1, **{**settings, "max_steps": 2}))
    with pytest.raises(AssertionError):
        assert_trees_close(params_of(fewer), params_of(one), **tolerance)


def test_interrupted_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path):
    settings = dict(augment=True, learning_rate=1e-3)  # augmentation: its keys must resume too
    straight = train_and_evaluate(tiny(tmp_path, "straight", **settings))

    stopped = train_and_evaluate(tiny(tmp_path, "resumed", max_steps=3, **settings))  # mid epoch 1
    assert stopped.summary.status == "interrupted"
    assert (stopped.summary.epochs_completed, stopped.summary.step_in_epoch) == (0, 3)
    assert stopped.summary.stop_reason == "max_steps" and stopped.summary.resume
    again = train_and_evaluate(tiny(tmp_path, "resumed", max_steps=6, **settings))  # across an epoch end
    assert (again.summary.epochs_completed, again.summary.step_in_epoch) == (1, 2)
    resumed = train_and_evaluate(tiny(tmp_path, "resumed", **settings))

    assert resumed.summary.status == straight.summary.status == "completed"
    assert_trees_close(params_of(resumed), params_of(straight), rtol=1e-6, atol=1e-7)
    assert resumed.summary.test_accuracy == pytest.approx(straight.summary.test_accuracy)
    metrics = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]  # no duplicates after two resumptions
    for got, want in zip(metrics, expected, strict=True):
        for key in ("step", "train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert got[key] == pytest.approx(want[key], rel=1e-5), key

    # A finished run run again does no training: same checkpoints, same metrics, summary rewritten.
    checkpoints = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir())
    (tmp_path / "resumed" / "summary.json").unlink()
    rerun = train_and_evaluate(tiny(tmp_path, "resumed", **settings))
    assert rerun.summary.status == "completed" and rerun.summary.epochs_completed == 2
    assert rerun.summary.test_accuracy == pytest.approx(resumed.summary.test_accuracy)
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()) == checkpoints
    assert (tmp_path / "resumed" / "summary.json").exists()
    assert len((tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()) == 2

    # Raising the epochs extends it.
    extended = train_and_evaluate(tiny(tmp_path, "resumed", epochs=3, **settings))
    assert extended.summary.epochs_completed == 3 and extended.summary.global_step == 12
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_run_directory_holds_config_metrics_tensorboard_checkpoints_summary(tmp_path):
    result = train_and_evaluate(tiny(tmp_path, epochs=4, keep_checkpoints=3, eval_every=2))
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["act"] == "relu" and config["config"]["learning_rate"] == 1e-4
    assert set(config["versions"]) >= {"jax", "flax", "optax"}
    assert len(config["devices"]) == 4 and config["num_devices"] == 4
    assert config["xla_flags"] == os.environ["XLA_FLAGS"]  # which kernels ran

    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4]
    for record in metrics:
        assert {
            "train_loss",
            "train_accuracy",
            "val_loss",
            "val_accuracy",
            "epoch_seconds",
            "images_per_second",
        } <= set(record)
    assert [m["val_accuracy"] is not None for m in metrics] == [False, True, False, True]

    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == [8, 12, 16]

    summary = json.loads((run / "summary.json").read_text())
    assert summary == result.summary.to_json()
    assert summary["status"] == "completed"
    assert 0 <= summary["test_accuracy"] <= 1 and 0 <= summary["best_val_accuracy"] <= 1
    assert summary["epochs_completed"] == 4 and summary["num_devices"] == 4
    assert (summary["activation"], summary["dataset"], summary["model"]) == ("relu", "digits", "resnet20")
    assert summary["train_time_s"] > 0
    assert not (run / "run.lock").exists(), "the lock is released at the end"


def test_a_non_finite_loss_stops_the_run_as_diverged(tmp_path):
    result = train_and_evaluate(tiny(tmp_path, model="lenet", width=None, optimizer="sgd", learning_rate=1e12))
    summary = result.summary
    assert summary.status == Status.DIVERGED and summary.diverged_reason
    assert summary.diverged_epoch == 1 and 1 <= summary.diverged_step <= 4
    assert summary.test_accuracy is None
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "diverged"
    assert not (tmp_path / "run" / "checkpoints").exists() or not any(
        p.name.isdigit() for p in (tmp_path / "run" / "checkpoints").iterdir()
    ), "no checkpoint of a diverged state"


def test_bfloat16_computes_in_bfloat16_and_keeps_float32_parameters(tmp_path):
    result = train_and_evaluate(tiny(tmp_path, model="lenet", width=None, precision="bfloat16", max_steps=2))
    assert {leaf.dtype for leaf in jax.tree.leaves(result.state.params)} == {np.dtype("float32")}
    model = create_model(TrainConfig(act="relu", model="lenet", precision="bfloat16", workdir="unused"), 10, (32, 32))
    assert model.conv1.dtype == jnp.bfloat16
    assert result.summary.status == "interrupted" and result.summary.global_step == 2


def test_resuming_with_other_settings_is_refused(tmp_path):
    train_and_evaluate(tiny(tmp_path, model="lenet", width=None, max_steps=1))
    with pytest.raises(ConfigError, match="learning_rate"):
        train_and_evaluate(tiny(tmp_path, model="lenet", width=None, max_steps=2, learning_rate=1e-3))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(act="nope"), "unknown activation"),
        (dict(model="nope"), "unknown model"),
        (dict(dataset="nope"), "unknown dataset"),
        (dict(batch_size=30), "not divisible by the 4 devices"),
        (dict(act="nelu", window=0), "window"),
        (dict(model="lenet", width=0.5), "width"),
    ],
)
def test_bad_settings_raise_config_errors_before_writing(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train_and_evaluate(tiny(tmp_path, **overrides))
    assert not (tmp_path / "run").exists()


def test_config_defaults_are_the_papers():
    config = TrainConfig(act="nelu")
    assert (config.window, config.influence) == (4, 0.1)
    assert TrainConfig(act="softmax_threshold").threshold == 0.25
    assert (config.optimizer, config.learning_rate, config.batch_size, config.schedule) == (
        "adam",
        1e-4,
        64,
        "constant",
    )
    assert (config.augment, config.precision, config.seed, config.model) == (False, "float32", 0, "resnet38")
    assert config.epochs == default_epochs("digits") == 10
    assert TrainConfig(act="nelu", dataset="cifar100").epochs == 50
    assert config.workdir == "runs/digits-resnet38-nelu-s0"
    assert config.weight_decay == 0 and TrainConfig(act="relu", optimizer="adamw").weight_decay == 1e-4
    assert TrainConfig(act="relu", optimizer="sgd").momentum == 0.9
    assert (config.divergence_factor, config.max_loss, config.label_noise) == (100, 1e6, 0)
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(act="relu", epochs=0)


def test_settings_that_do_not_apply_are_none_and_refused_when_given():
    relu = TrainConfig(act="relu")
    assert (relu.window, relu.influence, relu.threshold, relu.learn_influence) == (None, None, None, None)
    assert (relu.momentum, relu.nesterov, relu.cycle_epochs) == (None, None, None)
    assert relu.act_params == {}
    nelu = TrainConfig(act="nelu")
    assert nelu.threshold is None and "threshold" in nelu.not_applicable()
    assert nelu.act_params["window"] == 4 and "threshold" not in nelu.act_params
    for settings, field in [
        (dict(act="nelu", threshold=0.5), "threshold"),
        (dict(act="relu", influence=0.1), "influence"),
        (dict(act="relu", window=4), "window"),
        (dict(act="relu", learn_influence=True), "learn_influence"),
        (dict(act="nelu", momentum=0.5), "momentum"),
        (dict(act="nelu", nesterov=True), "nesterov"),
        (dict(act="nelu", cycle_epochs=2), "cycle_epochs"),
    ]:
        with pytest.raises(NotApplicableError) as error:
            TrainConfig(**settings)
        assert error.value.field == field and str(error.value).startswith(f"{field}=")
    # A switch left off is as good as not given.
    assert TrainConfig(act="relu", learn_influence=False, nesterov=False).learn_influence is None


def test_resume_compares_only_what_applies():
    nelu = TrainConfig(act="nelu", workdir="w")
    earlier = {**nelu.to_dict(), "threshold": 0.25, "momentum": 0.9}  # as runs before this wrote them
    assert nelu.differences(earlier) == {}
    del earlier["label_noise"]  # a setting added since: its default
    assert nelu.differences(earlier) == {}
    assert nelu.differences({**earlier, "influence": 0.5}) == {"influence": (0.5, 0.1)}
    assert nelu.differences({**earlier, "epochs": 99}) == {}  # resumable


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle", "triangular"])
def test_optimizers_and_schedules(optimizer, schedule):
    sgd = dict(nesterov=True) if optimizer == "sgd" else {}
    config = TrainConfig(
        act="relu",
        optimizer=optimizer,
        schedule=schedule,
        learning_rate=0.1,
        weight_decay=1e-3,
        workdir="unused",
        **sgd,
    )
    learning_rate = make_schedule(config, total_steps=100, steps_per_epoch=10)
    if schedule == "constant":
        assert float(learning_rate(99)) == pytest.approx(0.1)
    elif schedule == "cosine":
        assert float(learning_rate(0)) == pytest.approx(0.1) and float(learning_rate(100)) == pytest.approx(0.0)
    elif schedule == "onecycle":
        assert float(learning_rate(0)) < 0.1 and max(float(learning_rate(s)) for s in range(100)) == pytest.approx(
            0.1, rel=0.05
        )
    else:  # a 4-epoch (40-step) cycle between 0.01 and 0.1
        values = [float(learning_rate(s)) for s in (0, 10, 20, 30, 40, 60)]
        assert values == pytest.approx([0.01, 0.055, 0.1, 0.055, 0.01, 0.1])
    tx = make_optimizer(config, learning_rate)
    params = {"w": np.ones(3, np.float32)}
    updates, _ = tx.update({"w": np.full(3, 0.5, np.float32)}, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    assert np.all(np.asarray(new["w"]) < 1), "a positive gradient (and weight decay) lowers the weights"


def test_divergence_bound():
    bound = dict(divergence_factor=100.0, max_loss=1e6)
    assert divergence_reason(float("inf"), first_epoch_loss=2.0, **bound) == "non-finite loss"
    assert divergence_reason(float("nan"), first_epoch_loss=None, **bound) == "non-finite loss"
    assert divergence_reason(1e6, first_epoch_loss=None, **bound) is None  # at the bound: not above
    assert "max_loss" in divergence_reason(1.5e6, first_epoch_loss=None, **bound)
    assert divergence_reason(200.0, first_epoch_loss=2.0, **bound) is None
    assert "divergence_factor" in divergence_reason(200.1, first_epoch_loss=2.0, **bound)
    assert divergence_reason(1e30, first_epoch_loss=2.0, divergence_factor=math.inf, max_loss=math.inf) is None


def test_label_noise_changes_only_the_training_labels(tmp_path, digits):
    clean = TrainConfig(act="relu", workdir="unused")
    noisy = TrainConfig(act="relu", label_noise=0.5, workdir="unused")
    assert np.array_equal(_training_split(clean, digits).labels, digits.train.labels)
    changed = np.mean(_training_split(noisy, digits).labels != digits.train.labels)
    assert 0.35 < changed < 0.5  # half replaced by a uniform label, its own included 1 time in 10
    with pytest.raises(ValueError, match="label_noise"):
        TrainConfig(act="relu", label_noise=1.0)


@pytest.mark.parametrize("module", [loop, optim])
def test_doctests_pass(module):
    import doctest

    failed, attempted = doctest.testmod(module, verbose=False)
    assert attempted > 0 and failed == 0, f"{failed} of {attempted} doctest examples of {module.__name__} failed"


def test_window_options_and_a_learned_influence_reach_the_model_and_config_json(tmp_path):
    config = tiny(
        tmp_path,
        act="nelu",
        model="lenet",
        width=None,
        learn_influence=True,
        window_mode="centered",
        window_over="channels",
        max_steps=2,
    )
    assert config.act_params == {"window": 4, "influence": 0.1, "mode": "centered", "over": "channels"}
    result = train_and_evaluate(config)
    learned = [
        jax.tree_util.keystr(path)
        for path, _ in jax.tree_util.tree_leaves_with_path(result.state.params)
        if "influence" in jax.tree_util.keystr(path)
    ]
    assert learned, "the influence is a trained parameter"
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (recorded["learn_influence"], recorded["window_mode"], recorded["window_over"]) == (
        True,
        "centered",
        "channels",
    )
    # Resuming with another window mode is another run: refused.
    with pytest.raises(ConfigError, match="window_mode"):
        train_and_evaluate(dataclasses.replace(config, window_mode="tiled", max_steps=3))
