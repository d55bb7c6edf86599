"""Runtime benchmarks: every activation against ReLU, measured in one process.

    python -m experiments.benchmark activations [--shape 64,32,32,128] [--json FILE]

`activations` times each registered activation's forward pass and its forward plus
backward pass (`jax.vjp` with a fixed cotangent) on one input, jit-compiled, and
reports the ratio to ReLU measured in the same run. Timings exclude compilation.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Sequence

import jax
import jax.numpy as jnp

import winact_jax as wa
from experiments import timing


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _activation_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        try:
            wa.canonical_name(name)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return names


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _write_json(path: str | None, payload: dict) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=2)
        print(f"wrote {path}")


# --------------------------------------------------------------------------- activations


def activation_timings(
    names: Sequence[str],
    shape: tuple[int, ...],
    *,
    window: int,
    dtype=jnp.float32,
    rounds: int = 20,
) -> list[dict]:
    """Forward and forward+backward median times of each activation, and ratios to ReLU."""
    x = jax.random.normal(jax.random.key(0), shape, dtype)
    cotangent = jax.random.normal(jax.random.key(1), shape, dtype)
    names = ["relu"] + [n for n in names if wa.canonical_name(n) != "relu"]

    candidates = {}
    for name in names:
        params = {"window": window} if "window" in wa.parameters(name) else {}
        act = wa.get(name, **params)

        def forward_backward(x, g, act=act):
            y, vjp = jax.vjp(act, x)
            return y, vjp(g)[0]

        forward = jax.jit(act)
        both = jax.jit(forward_backward)
        candidates[(name, "fwd")] = lambda f=forward: f(x)
        candidates[(name, "fwd+bwd")] = lambda f=both: f(x, cotangent)

    medians = timing.interleaved_medians(candidates, rounds=rounds, desc="activations")
    relu_fwd, relu_both = medians[("relu", "fwd")], medians[("relu", "fwd+bwd")]
    return [
        {
            "activation": name,
            "kind": wa.kind(name),
            "forward_ms": round(medians[(name, "fwd")] * 1e3, 3),
            "forward_backward_ms": round(medians[(name, "fwd+bwd")] * 1e3, 3),
            "forward_ratio_to_relu": round(medians[(name, "fwd")] / relu_fwd, 3),
            "forward_backward_ratio_to_relu": round(medians[(name, "fwd+bwd")] / relu_both, 3),
        }
        for name in names
    ]


def run_activations(args: argparse.Namespace) -> int:
    names = args.acts or list(wa.names())
    rows = activation_timings(names, args.shape, window=args.window, dtype=jnp.dtype(args.dtype), rounds=args.rounds)
    device = timing.device_description()
    print(f"\nActivations on {args.dtype}{list(args.shape)}, window {args.window}, {device}, median of {args.rounds} rounds\n")
    print(
        _markdown_table(
            ["activation", "kind", "forward (ms)", "x ReLU", "forward+backward (ms)", "x ReLU"],
            [
                [
                    r["activation"],
                    r["kind"],
                    f"{r['forward_ms']:.2f}",
                    f"{r['forward_ratio_to_relu']:.2f}",
                    f"{r['forward_backward_ms']:.2f}",
                    f"{r['forward_backward_ratio_to_relu']:.2f}",
                ]
                for r in rows
            ],
        )
    )
    window_rows = [r for r in rows if r["kind"] == "window"]
    if window_rows:
        worst = max(window_rows, key=lambda r: r["forward_backward_ratio_to_relu"])
        print(
            f"\nslowest window activation: {worst['activation']} at "
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
            "rounds": args.rounds,
            "rows": rows,
        },
    )
    return 0


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    acts = commands.add_parser("activations", help="every activation vs ReLU on one input")
    acts.add_argument("--shape", type=_int_tuple, default=(64, 32, 32, 128),
                      help="input shape, channels last (default: 64,32,32,128)")
    acts.add_argument("--window", type=int, default=4, help="window size (default: 4)")
    acts.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                      help="input dtype (default: float32)")
    acts.add_argument("--acts", type=_activation_list, default=None,
                      help="comma-separated activation names (default: every registered one)")
    acts.add_argument("--rounds", type=int, default=20, help="timed rounds per activation (default: 20)")
    acts.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    acts.set_defaults(run=run_activations)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
