"""Runtime benchmarks: every activation against ReLU, measured in one process.

    python -m experiments.benchmark activations [--shape 64,32,32,128] [--json FILE]
    python -m experiments.benchmark train-step --model seed_backbone --image-size 32 \
        --batch-size 64 --acts relu,nelu,excitator --steps 10 [--json FILE]
    python -m experiments.benchmark epoch [--batches 95] [--json FILE]

`activations` times each activation's forward pass and its forward plus backward
pass (`jax.vjp` with a fixed cotangent) on one input. `train-step` times the real
training step of `winact_jax.train` (forward, backward, Adam update, data-parallel
over every device) on synthetic data. `epoch` rebuilds the seed paper's runtime
table: SeedBackbone on Caltech-101 shapes (64x64, batch 64, 95 batches an epoch),
seconds per training epoch and forward iterations per second, synthetic data so
nothing is downloaded. Every timing excludes compilation and is a median over
interleaved rounds; every ratio is to ReLU measured in the same process.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp

import winact_jax as wa
from experiments import timing
from experiments.cli import PAPER_TABLE1_ACTS
from experiments.cli import activation_list as _activation_list
from winact_jax.backends import prefer_eigen_convolutions
from winact_jax.window_activations import DEFAULT_WINDOW


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _variant_list(text: str) -> list[str]:
    variants = [part.strip() for part in text.split(",") if part.strip()]
    for variant in variants:
        if variant not in WINDOW_VARIANTS:
            raise argparse.ArgumentTypeError(
                f"unknown window variant {variant!r}; accepted: {', '.join(WINDOW_VARIANTS)}"
            )
    return variants


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _write_json(path: str | None, payload: dict) -> None:
    if path:
        # The flags decide which kernels ran (see winact_jax/backends.py).
        payload = {**payload, "xla_flags": os.environ.get("XLA_FLAGS", "")}
        with open(path, "w") as f:
            json.dump(payload, f, indent=2)
        print(f"wrote {path}")


# --------------------------------------------------------------------------- activations


# Window variants the `activations` benchmark can time (docs/spec.md, round 2).
WINDOW_VARIANTS = {
    "tiled": {},
    "centered": {"mode": "centered"},
    "channels": {"over": "channels"},
}


def _timed_activations(names, shape, dtype, *, window, variants, centered_window, channel_window):
    """`(name, variant, callable)` for every activation to time: window ones once per
    variant, `prelu` with a per-channel slope, `frelu` with a 3x3 kernel (NHWC only)."""
    sizes = {"tiled": window, "centered": centered_window, "channels": channel_window}
    channels = shape[-1]
    entries = []
    for name in names:
        kind = wa.kind(name)
        if kind == "window":
            for variant in variants:
                entries.append(
                    (
                        name,
                        f"{variant} {sizes[variant]}",
                        wa.get(name, window=sizes[variant], **WINDOW_VARIANTS[variant]),
                    )
                )
        elif wa.canonical_name(name) == "prelu":
            slope = jnp.full((channels,), 0.25, dtype)
            entries.append((name, "per-channel slope", lambda x, slope=slope: wa.prelu(x, slope)))
        elif wa.canonical_name(name) == "frelu":
            if len(shape) != 4:
                print(f"skipping frelu: it takes NHWC inputs, not shape {list(shape)}")
                continue
            kernel = jax.random.normal(jax.random.key(2), (3, 3, channels), dtype) / 3
            scale, bias = jnp.ones((channels,), dtype), jnp.zeros((channels,), dtype)
            entries.append((name, "3x3", lambda x, k=kernel, s=scale, b=bias: wa.frelu(x, k, s, b)))
        else:
            entries.append((name, "", wa.get(name)))
    return entries


def activation_timings(
    names: Sequence[str],
    shape: tuple[int, ...],
    *,
    window: int,
    dtype=jnp.float32,
    rounds: int = 20,
    variants: Sequence[str] = ("tiled",),
    centered_window: int = 3,
    channel_window: int = 4,
) -> list[dict]:
    """Forward and forward+backward median times of each activation, and ratios to ReLU.

    Window activations are timed once per entry of `variants` (`"tiled"` with
    `window`, `"centered"` with `centered_window`, `"channels"` with
    `channel_window`); each row names its variant.
    """
    x = jax.random.normal(jax.random.key(0), shape, dtype)
    cotangent = jax.random.normal(jax.random.key(1), shape, dtype)
    names = ["relu"] + [n for n in names if wa.canonical_name(n) != "relu"]
    entries = _timed_activations(
        names,
        shape,
        dtype,
        window=window,
        variants=variants,
        centered_window=centered_window,
        channel_window=channel_window,
    )

    candidates = {}
    for name, variant, act in entries:

        def forward_backward(x, g, act=act):
            y, vjp = jax.vjp(act, x)
            return y, vjp(g)[0]

        forward = jax.jit(act)
        both = jax.jit(forward_backward)
        candidates[(name, variant, "fwd")] = lambda f=forward: f(x)
        candidates[(name, variant, "fwd+bwd")] = lambda f=both: f(x, cotangent)

    medians = timing.interleaved_medians(candidates, rounds=rounds, desc="activations")
    relu_fwd, relu_both = medians[("relu", "", "fwd")], medians[("relu", "", "fwd+bwd")]
    return [
        {
            "activation": name,
            "kind": wa.kind(name),
            "variant": variant,
            "forward_ms": round(medians[(name, variant, "fwd")] * 1e3, 4),
            "forward_backward_ms": round(medians[(name, variant, "fwd+bwd")] * 1e3, 4),
            "forward_ratio_to_relu": round(medians[(name, variant, "fwd")] / relu_fwd, 3),
            "forward_backward_ratio_to_relu": round(medians[(name, variant, "fwd+bwd")] / relu_both, 3),
        }
        for name, variant, _ in entries
    ]


def run_activations(args: argparse.Namespace) -> int:
    names = args.acts or list(wa.names())
    rows = activation_timings(
        names,
        args.shape,
        window=args.window,
        dtype=jnp.dtype(args.dtype),
        rounds=args.rounds,
        variants=args.variants,
        centered_window=args.centered_window,
        channel_window=args.channel_window,
    )
    device = timing.device_description()
    print(
        f"\nActivations on {args.dtype}{list(args.shape)}, window {args.window}, {device}, median of {args.rounds} rounds\n"
    )
    print(
        _markdown_table(
            ["activation", "kind", "variant", "forward (ms)", "x ReLU", "forward+backward (ms)", "x ReLU"],
            [
                [
                    r["activation"],
                    r["kind"],
                    r["variant"],
                    f"{r['forward_ms']:.2f}",
                    f"{r['forward_ratio_to_relu']:.2f}",
                    f"{r['forward_backward_ms']:.2f}",
                    f"{r['forward_backward_ratio_to_relu']:.2f}",
                ]
                for r in rows
            ],
        )
    )
    for variant in args.variants:
        window_rows = [r for r in rows if r["kind"] == "window" and r["variant"].startswith(variant + " ")]
        if window_rows:
            worst = max(window_rows, key=lambda r: r["forward_backward_ratio_to_relu"])
            label = "" if list(args.variants) == ["tiled"] else f" ({worst['variant']})"
            print(
                f"\nslowest window activation{label}: {worst['activation']} at "
                f"{worst['forward_backward_ratio_to_relu']:.2f}x ReLU forward+backward "
                f"({worst['forward_backward_ms']:.1f} ms vs {rows[0]['forward_backward_ms']:.1f} ms)"
            )
    _write_json(
        args.json,
        {
            "benchmark": "activations",
            "date": datetime.date.today().isoformat(),
            "device": device,
            "jax": jax.__version__,
            "shape": list(args.shape),
            "dtype": args.dtype,
            "window": args.window,
            "variants": list(args.variants),
            "centered_window": args.centered_window,
            "channel_window": args.channel_window,
            "rounds": args.rounds,
            "rows": rows,
        },
    )
    return 0


# --------------------------------------------------------------------------- training steps

# The seed's runtime table: Caltech-101 shapes, 95 batches of 64 an epoch.
EPOCH_IMAGE_SIZE, EPOCH_BATCH_SIZE, EPOCH_BATCHES, EPOCH_CLASSES = 64, 64, 95, 101


def synthetic_dataset(image_size: int, num_examples: int, num_classes: int):
    """Random uint8 images and labels shaped like a real `Dataset` (nothing downloaded)."""
    import numpy as np

    from winact_jax.data import Dataset, Split

    rng = np.random.default_rng(0)

    def split(n):
        images = rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8)
        return Split(images, rng.integers(0, num_classes, n).astype(np.int32))

    return Dataset(
        name="synthetic",
        train=split(num_examples),
        validation=split(num_examples),
        test=split(8),
        num_classes=num_classes,
        class_names=tuple(f"class {i}" for i in range(num_classes)),
        image_shape=(image_size, image_size, 3),
        pixel_range=(-1.0, 1.0),
    )


class TrainingBench:
    """One activation's model, train state and jitted steps, on every device."""

    def __init__(
        self,
        act: str,
        *,
        model: str,
        image_size: int,
        batch_size: int,
        num_batches: int,
        num_classes: int,
        width: float | None = None,
        **settings,
    ):
        from winact_jax.data import epoch_batches, eval_batches, put_on_device
        from winact_jax.sharding import make_mesh, replicate
        from winact_jax.train import TrainConfig, steps
        from winact_jax.train.optim import make_optimizer, make_schedule
        from winact_jax.train.state import create_model, create_train_state

        config = TrainConfig(act=act, model=model, batch_size=batch_size, width=width, workdir="unused", **settings)
        dataset = synthetic_dataset(image_size, batch_size * num_batches, num_classes)
        self.mesh = make_mesh()
        tx = make_optimizer(config, make_schedule(config, num_batches))
        model_def, state = create_train_state(create_model(config, num_classes, (image_size, image_size)), tx)
        self.state = replicate(state, self.mesh)
        self.train = put_on_device(dataset.train, self.mesh)
        self.validation = put_on_device(dataset.validation, self.mesh)
        self.batches = epoch_batches(0, 0, len(dataset.train), batch_size, mesh=self.mesh)
        self.eval_table = eval_batches(len(dataset.validation), batch_size, mesh=self.mesh)
        self.stop_flags = steps.stop_flags_for(self.mesh, False)
        self.train_step = steps.make_train_step(model_def, tx, dataset, self.mesh, seed=0, augment_images=False)
        self.evaluate = steps.make_evaluate(model_def, dataset, self.mesh)
        self.num_batches = num_batches
        self._next = 0

    def step(self):
        """One training step (the state is donated and replaced)."""
        self.state, metrics = self.train_step(self.state, self.train, self.batches, 0, self._next, self.stop_flags)
        self._next = (self._next + 1) % self.num_batches
        return metrics

    def epoch(self):
        """`num_batches` training steps, as the training loop dispatches them."""
        metrics = None
        for _ in range(self.num_batches):
            metrics = self.step()
        return metrics

    def forward_pass(self):
        """Forward passes (evaluation mode) over `num_batches` batches, one dispatch."""
        return self.evaluate(self.state, self.validation, *self.eval_table)


def _timed_train_steps(names, variants, *, centered_window, channel_window):
    """`(activation, variant label, TrainConfig settings)` for every step to time:
    window activations once per variant, the others once."""
    from winact_jax.train.config import ACT_PARAMETERS

    # `WINDOW_VARIANTS` names the activation's parameters; a run names its settings.
    setting = {param: field for field, param in ACT_PARAMETERS.items()}
    windows = {"tiled": DEFAULT_WINDOW, "centered": centered_window, "channels": channel_window}
    entries = []
    for name in names:
        if wa.kind(name) != "window":
            entries.append((name, "", {}))
            continue
        for variant in variants:
            settings = {setting[p]: v for p, v in WINDOW_VARIANTS[variant].items()}
            settings["window"] = windows[variant]
            entries.append((name, f"{variant} {windows[variant]}", settings))
    return entries


def run_train_step(args: argparse.Namespace) -> int:
    names = ["relu"] + [n for n in args.acts if wa.canonical_name(n) != "relu"]
    entries = _timed_train_steps(
        names, args.variants, centered_window=args.centered_window, channel_window=args.channel_window
    )
    benches = {
        f"{name} {label}".strip(): TrainingBench(
            name,
            model=args.model,
            image_size=args.image_size,
            batch_size=args.batch_size,
            num_batches=max(2, args.steps),
            num_classes=args.num_classes,
            width=args.width,
            **settings,
        )
        for name, label, settings in entries
    }
    medians = timing.interleaved_medians({n: b.step for n, b in benches.items()}, rounds=args.steps, desc="train-step")
    relu = medians["relu"]
    rows = [
        {
            "activation": name,
            "variant": label,
            "step_ms": round(medians[key] * 1e3, 3),
            "ratio_to_relu": round(medians[key] / relu, 3),
        }
        for (name, label, _), key in zip(entries, benches)
    ]
    device = timing.device_description()
    print(
        f"\nTraining step of {args.model} at {args.image_size}x{args.image_size}, global batch "
        f"{args.batch_size}, {device}, median of {args.steps} steps\n"
    )
    print(
        _markdown_table(
            ["activation", "variant", "step (ms)", "x ReLU"],
            [[r["activation"], r["variant"], f"{r['step_ms']:.1f}", f"{r['ratio_to_relu']:.3f}"] for r in rows],
        )
    )
    worst = max(rows[1:], key=lambda r: r["ratio_to_relu"], default=None)
    if worst:
        label = f" ({worst['variant']})" if worst["variant"] else ""
        print(
            f"\nslowest: {worst['activation']}{label} at {worst['ratio_to_relu']:.3f}x ReLU's training step "
            f"({worst['step_ms']:.1f} ms vs {rows[0]['step_ms']:.1f} ms)"
        )
    _write_json(
        args.json,
        {
            "benchmark": "train-step",
            "date": datetime.date.today().isoformat(),
            "device": device,
            "jax": jax.__version__,
            "model": args.model,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "variants": list(args.variants),
            "centered_window": args.centered_window,
            "channel_window": args.channel_window,
            "rows": rows,
        },
    )
    return 0


def run_epoch(args: argparse.Namespace) -> int:
    names = ["relu"] + [n for n in args.acts if wa.canonical_name(n) != "relu"]
    benches = {
        name: TrainingBench(
            name,
            model="seed_backbone",
            image_size=args.image_size,
            batch_size=args.batch_size,
            num_batches=args.batches,
            num_classes=EPOCH_CLASSES,
        )
        for name in names
    }
    epochs = timing.interleaved_medians(
        {n: b.epoch for n, b in benches.items()}, rounds=args.rounds, warmup=1, desc="epoch"
    )
    forwards = timing.interleaved_medians(
        {n: b.forward_pass for n, b in benches.items()}, rounds=args.rounds, warmup=1, desc="forward"
    )
    rows = [
        {
            "activation": n,
            "epoch_s": round(epochs[n], 3),
            "forward_it_per_s": round(args.batches / forwards[n], 2),
            "epoch_ratio_to_relu": round(epochs[n] / epochs["relu"], 3),
        }
        for n in names
    ]
    device = timing.device_description()
    print(
        f"\nSeedBackbone epoch: {args.batches} batches of {args.batch_size} at {args.image_size}x"
        f"{args.image_size}, {device}, median of {args.rounds} epochs\n"
    )
    print(
        _markdown_table(
            ["activation", "epoch (s)", "x ReLU", "forward iterations/s"],
            [
                [
                    r["activation"],
                    f"{r['epoch_s']:.2f}",
                    f"{r['epoch_ratio_to_relu']:.2f}",
                    f"{r['forward_it_per_s']:.2f}",
                ]
                for r in rows
            ],
        )
    )
    slowest = max(rows, key=lambda r: r["epoch_s"])
    print(
        f"\nslowest epoch: {slowest['activation']} {slowest['epoch_s']:.2f} s "
        f"({slowest['epoch_ratio_to_relu']:.2f}x ReLU's {rows[0]['epoch_s']:.2f} s)"
    )
    _write_json(
        args.json,
        {
            "benchmark": "epoch",
            "date": datetime.date.today().isoformat(),
            "device": device,
            "jax": jax.__version__,
            "model": "seed_backbone",
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "batches": args.batches,
            "rounds": args.rounds,
            "rows": rows,
        },
    )
    return 0


# --------------------------------------------------------------------------- command line


def _add_variant_flags(parser: argparse.ArgumentParser) -> None:
    """--variants, --centered-window and --channel-window: the window variants to time."""
    parser.add_argument(
        "--variants",
        type=_variant_list,
        default=["tiled"],
        help="comma-separated window variants to time: tiled, centered, channels (default: tiled)",
    )
    parser.add_argument("--centered-window", type=int, default=3, help="window of the centered variant (default: 3)")
    parser.add_argument("--channel-window", type=int, default=4, help="window of the channels variant (default: 4)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--cpu-convolutions",
        choices=["eigen", "ynnpack"],
        default="eigen",
        help="which library XLA:CPU runs convolutions with (default: eigen, as the training "
        "command does; see winact_jax/backends.py); no effect on GPUs",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    acts = commands.add_parser("activations", help="every activation vs ReLU on one input")
    acts.add_argument(
        "--shape", type=_int_tuple, default=(64, 32, 32, 128), help="input shape, channels last (default: 64,32,32,128)"
    )
    acts.add_argument("--window", type=int, default=4, help="window size (default: 4)")
    acts.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="input dtype (default: float32)"
    )
    acts.add_argument(
        "--acts",
        type=_activation_list,
        default=None,
        help="comma-separated activation names (default: every registered one)",
    )
    _add_variant_flags(acts)
    acts.add_argument("--rounds", type=int, default=20, help="timed rounds per activation (default: 20)")
    acts.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    acts.set_defaults(run=run_activations)

    step = commands.add_parser("train-step", help="training-step time per activation vs ReLU")
    step.add_argument("--model", default="seed_backbone", help="model name (default: seed_backbone)")
    step.add_argument("--image-size", type=int, default=32, help="square input size (default: 32)")
    step.add_argument("--batch-size", type=int, default=64, help="global batch (default: 64)")
    step.add_argument("--width", type=float, default=None, help="model width multiplier (default: the model's)")
    step.add_argument("--num-classes", type=int, default=100, help="classes of the head (default: 100)")
    step.add_argument(
        "--acts",
        type=_activation_list,
        default=list(PAPER_TABLE1_ACTS),
        help="comma-separated activations (default: the seed's ten); relu is always timed",
    )
    _add_variant_flags(step)
    step.add_argument("--steps", type=int, default=10, help="timed steps per activation (default: 10)")
    step.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    step.set_defaults(run=run_train_step)

    epoch = commands.add_parser("epoch", help="the seed's runtime table: SeedBackbone epochs on Caltech-101 shapes")
    epoch.add_argument(
        "--acts",
        type=_activation_list,
        default=list(PAPER_TABLE1_ACTS),
        help="comma-separated activations (default: the seed's ten); relu is always timed",
    )
    epoch.add_argument("--image-size", type=int, default=EPOCH_IMAGE_SIZE, help="default: 64")
    epoch.add_argument("--batch-size", type=int, default=EPOCH_BATCH_SIZE, help="default: 64")
    epoch.add_argument("--batches", type=int, default=EPOCH_BATCHES, help="batches an epoch (default: 95)")
    epoch.add_argument("--rounds", type=int, default=3, help="timed epochs per activation (default: 3)")
    epoch.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    epoch.set_defaults(run=run_epoch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cpu_convolutions == "eigen":
        prefer_eigen_convolutions()  # before JAX first uses a device
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
