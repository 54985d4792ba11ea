"""A tiny, deterministic ML pipeline: prepare data, train a linear model, evaluate it.

Least squares on synthetic data, in the standard library only, so it runs anywhere in
well under a second while still producing real numbers to pass downstream.
"""

import json
import random
import sys

from kubedag_result import write_result


def prepare(samples):
    rng = random.Random(42)
    xs = [rng.uniform(0, 10) for _ in range(samples)]
    points = [(x, 3.0 * x + 2.0 + rng.gauss(0, 0.5)) for x in xs]
    print(f"prepared {len(points)} samples")
    write_result({"samples": len(points), "seed": 42})


def train(prepared_text, epochs):
    prepared = json.loads(prepared_text)
    rng = random.Random(prepared["seed"])
    xs = [rng.uniform(0, 10) for _ in range(prepared["samples"])]
    ys = [3.0 * x + 2.0 + rng.gauss(0, 0.5) for x in xs]
    slope, intercept, rate = 0.0, 0.0, 0.01
    for _ in range(epochs):
        grad_s = sum((slope * x + intercept - y) * x for x, y in zip(xs, ys, strict=True)) / len(xs)
        grad_i = sum(slope * x + intercept - y for x, y in zip(xs, ys, strict=True)) / len(xs)
        slope, intercept = slope - rate * grad_s, intercept - rate * grad_i
    print(f"trained for {epochs} epochs: y = {slope:.3f} x + {intercept:.3f}")
    write_result({"slope": round(slope, 4), "intercept": round(intercept, 4)})


def evaluate(model_text, threshold):
    model = json.loads(model_text)
    rng = random.Random(7)
    xs = [rng.uniform(0, 10) for _ in range(200)]
    errors = [(model["slope"] * x + model["intercept"] - (3.0 * x + 2.0)) ** 2 for x in xs]
    mse = sum(errors) / len(errors)
    print(f"mean squared error {mse:.4f} (threshold {threshold})")
    write_result({"mse": round(mse, 4), "accepted": mse <= threshold})


def publish(evaluation_text, channel):
    evaluation = json.loads(evaluation_text)
    if not evaluation["accepted"]:
        sys.exit(f"model rejected: mse {evaluation['mse']}")
    write_result(f"published model to {channel} (mse {evaluation['mse']})")


if __name__ == "__main__":
    step, *rest = sys.argv[1:]
    if step == "prepare":
        prepare(int(rest[0]))
    elif step == "train":
        train(rest[0], int(rest[1]))
    elif step == "evaluate":
        evaluate(rest[0], float(rest[1]))
    elif step == "publish":
        publish(rest[0], rest[1])
    else:
        sys.exit(f"unknown step {step!r}")
