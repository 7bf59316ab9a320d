#!/usr/bin/env python3
"""River's half of the drift-detector benchmark (River ADWIN / DDM / PageHinkley
versus vigil's Rust re-implementations, run on byte-identical error streams).

Two subcommands:

``generate --out DIR --seed S [--length N]``
    Builds four labelled error streams (1 = misclassified, 0 = correct) of a
    River classifier trained test-then-train (``predict_one`` then
    ``learn_one``) on a synthetic data stream, writes each as
    ``DIR/<name>.errors`` (raw bytes, one byte 0/1 per item, no header, no
    newline) plus ``DIR/<name>.json`` (metadata + River's detections), and
    runs the ``detect`` step on each file, storing the result under
    ``"river"`` in the json.

    ============== ===========================================================
    stream         construction (N = --length, S = --seed)
    ============== ===========================================================
    sea_abrupt     SEA(noise=0.1), concept switched *by hand* so the drift
                   points are exact: items [k*N//4, (k+1)*N//4) come from
                   ``SEA(variant=k, noise=0.1, seed=S+k)``, k = 0..3
                   (thresholds 8 -> 9 -> 7 -> 9.5). drift_points =
                   [N//4, N//2, 3*N//4] = index of the first item of the new
                   concept; drift_width = 1 (abrupt).
    sea_stable     ``SEA(variant=0, noise=0.1, seed=S)`` for N items; its
                   first N//4 items (and hence errors) equal sea_abrupt's.
    agrawal_gradual
                   ``ConceptDriftStream(stream=Agrawal(0, seed=S,
                   perturbation=0.1), drift_stream=Agrawal(2, seed=S+1,
                   perturbation=0.1), position=N//2 + 1, width=N//10,
                   seed=S)``. River's ``position`` counts samples from 1, so
                   ``N//2 + 1`` puts the sigmoid centre on 0-based index N//2:
                   P(item i from the new concept) = 1/(1+exp(-4(i-N//2)/w)),
                   i.e. 12 % at N//2 - w/2 and 88 % at N//2 + w/2.
                   drift_points = [N//2], drift_width = N//10.
    agrawal_stable ``Agrawal(0, seed=S, perturbation=0.1)`` for N items.
    ============== ===========================================================

    Every stream counts item 0 as an error: an untrained GaussianNB predicts
    ``None``. Streams are deterministic given (S, N), checked byte for byte
    across runs.

    Noise: SEA uses its label noise (10 % of labels flipped, as in the SEA
    paper); Agrawal has no label noise in River, so its ``perturbation=0.1``
    feature noise (each numeric feature moved by up to +-10 % of its range)
    plays that role.

    Classifier: ``naive_bayes.GaussianNB()``. Its state is a set of running
    per-class, per-feature means/variances, i.e. sufficient statistics that
    converge within a few hundred items and never forget. On a drift-free
    stream its error rate is therefore essentially flat after a short warm-up
    (measured, seed 7, in 4 000-item windows: SEA 0.113-0.124; Agrawal fn 0
    0.128-0.147), whereas ``tree.HoeffdingTreeClassifier`` keeps splitting
    and its error keeps falling for tens of thousands of items (Agrawal fn 2:
    0.33 -> 0.05), which would hand ADWIN genuine "drifts" on the stable
    streams. ``StandardScaler | LogisticRegression`` is also stationary and
    faster, but it adapts so quickly that SEA's abrupt switches barely show
    in its error stream (one 2 000-item window goes from 0.11 to 0.14-0.16)
    and it cannot fit Agrawal fn 0 (error 0.32). Because GaussianNB never
    forgets, a concept change shows up as a persistent rise in the error rate
    that decays only slowly as the new concept's statistics take over. That
    is a clear, realistic signal, and the detectors may fire again during
    the decay.

``detect FILE [FILE ...]``
    ``FILE.errors``: raw u8 values, each 0 or 1. ``FILE.f64``: little-endian
    f64 values (real-valued error streams, e.g. log loss). For each file runs
    River's ``drift.ADWIN()``, ``drift.binary.DDM()`` (only when every value
    is 0 or 1; otherwise ``null``) and ``drift.PageHinkley()`` with River's
    DEFAULT parameters and records the 0-based indices ``i`` at which
    ``drift_detected`` is True right after ``update(x_i)``. River's detectors
    reset themselves at the start of the update that follows a detection; we
    simply record what River does. Throughput is ``length / t`` where ``t``
    is the time.perf_counter duration of the whole loop (update + the
    ``drift_detected`` check + recording) on a fresh detector; the reported
    value uses the median ``t`` of 3 repeats. u8 input is fed as Python ints,
    f64 input as Python floats. Prints one JSON object to stdout::

        {"river_version": "...", "repeats": 3,
         "files": [{"file", "length", "binary", "detectors": {
             "adwin": {"detections": [...], "updates_per_s": f,
                       "params": {...}, "loop_seconds": [...]},
             "ddm": {...} | null, "page_hinkley": {...}}}]}

Only river and numpy are needed. Example::

    python3 benchmarks/drift_river.py generate --out /tmp/driftstreams --seed 7
    python3 benchmarks/drift_river.py detect /tmp/driftstreams/*.errors
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time

import numpy as np
import river
from river import datasets, drift, naive_bayes

REPEATS = 3
SEA_NOISE = 0.1
AGRAWAL_PERTURBATION = 0.1
AGRAWAL_BEFORE, AGRAWAL_AFTER = 0, 2
CLASSIFIER = "naive_bayes.GaussianNB()"

# Name in the output -> factory building the detector with River's defaults.
DETECTORS = {
    "adwin": drift.ADWIN,
    "ddm": drift.binary.DDM,
    "page_hinkley": drift.PageHinkley,
}
BINARY_ONLY = {"ddm"}


# --------------------------------------------------------------------------
# detect


def load_values(path: str) -> tuple[list, bool]:
    """Read an error stream; return (values as a Python list, is_binary)."""
    if path.endswith(".errors"):
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size and raw.max() > 1:
            raise ValueError(f"{path}: .errors files must hold only bytes 0 and 1")
        return raw.tolist(), True
    if path.endswith(".f64"):
        raw = np.fromfile(path, dtype="<f8")
        binary = bool(np.isin(raw, (0.0, 1.0)).all())
        return raw.tolist(), binary
    raise ValueError(f"{path}: unknown extension (expected .errors or .f64)")


def run_detector(factory, values: list) -> tuple[list[int], float]:
    """One pass of a fresh detector over values; (detection indices, seconds)."""
    detector = factory()
    update = detector.update
    detections = []
    append = detections.append
    start = time.perf_counter()
    for i, x in enumerate(values):
        update(x)
        if detector.drift_detected:
            append(i)
    elapsed = time.perf_counter() - start
    return detections, elapsed


def detect_values(values: list, binary: bool, repeats: int = REPEATS) -> dict:
    """Run every detector `repeats` times over values; the per-detector results."""
    out: dict = {}
    for name, factory in DETECTORS.items():
        if name in BINARY_ONLY and not binary:
            out[name] = None
            continue
        runs = [run_detector(factory, values) for _ in range(repeats)]
        detections = runs[0][0]
        if any(r[0] != detections for r in runs[1:]):
            raise RuntimeError(f"{name}: detections differ between repeats")
        seconds = [r[1] for r in runs]
        median = statistics.median(seconds)
        out[name] = {
            "detections": detections,
            "updates_per_s": len(values) / median if median > 0 else float("inf"),
            "params": factory()._get_params(),
            "loop_seconds": seconds,
        }
    return out


def detect_file(path: str, repeats: int = REPEATS) -> dict:
    values, binary = load_values(path)
    return {
        "file": path,
        "length": len(values),
        "binary": binary,
        "detectors": detect_values(values, binary, repeats),
    }


def cmd_detect(args: argparse.Namespace) -> None:
    result = {
        "river_version": river.__version__,
        "repeats": args.repeats,
        "files": [detect_file(p, args.repeats) for p in args.files],
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


# --------------------------------------------------------------------------
# generate


def sea_abrupt(n: int, seed: int):
    """SEA variants 0 -> 1 -> 2 -> 3, switched exactly at k*n//4."""
    bounds = [k * n // 4 for k in range(5)]
    for k in range(4):
        gen = datasets.synth.SEA(variant=k, noise=SEA_NOISE, seed=seed + k)
        yield from itertools.islice(gen, bounds[k + 1] - bounds[k])


def agrawal(function: int, seed: int):
    return datasets.synth.Agrawal(
        classification_function=function, seed=seed, perturbation=AGRAWAL_PERTURBATION
    )


def build_streams(n: int, seed: int) -> list[dict]:
    """Stream specifications: name, sample iterator, drift ground truth."""
    width = max(1, n // 10)
    return [
        {
            "name": "sea_abrupt",
            "data": sea_abrupt(n, seed),
            "drift_points": [n // 4, n // 2, 3 * n // 4],
            "drift_width": 1,
            "drift_kind": "abrupt",
            "generator": f"SEA(variant=k, noise={SEA_NOISE}, seed={seed}+k) for items "
            "[k*N//4, (k+1)*N//4), k=0..3",
        },
        {
            "name": "sea_stable",
            "data": datasets.synth.SEA(variant=0, noise=SEA_NOISE, seed=seed),
            "drift_points": [],
            "drift_width": 0,
            "drift_kind": "none",
            "generator": f"SEA(variant=0, noise={SEA_NOISE}, seed={seed})",
        },
        {
            "name": "agrawal_gradual",
            "data": datasets.synth.ConceptDriftStream(
                stream=agrawal(AGRAWAL_BEFORE, seed),
                drift_stream=agrawal(AGRAWAL_AFTER, seed + 1),
                # River's sample counter starts at 1: centre on 0-based n//2.
                position=n // 2 + 1,
                width=width,
                seed=seed,
            ),
            "drift_points": [n // 2],
            "drift_width": width,
            "drift_kind": "gradual",
            "generator": f"ConceptDriftStream(Agrawal({AGRAWAL_BEFORE}, seed={seed}, "
            f"perturbation={AGRAWAL_PERTURBATION}), Agrawal({AGRAWAL_AFTER}, seed={seed + 1}, "
            f"perturbation={AGRAWAL_PERTURBATION}), position={n // 2 + 1}, width={width}, "
            f"seed={seed}); sigmoid centre at 0-based index {n // 2}",
        },
        {
            "name": "agrawal_stable",
            "data": agrawal(AGRAWAL_BEFORE, seed),
            "drift_points": [],
            "drift_width": 0,
            "drift_kind": "none",
            "generator": f"Agrawal({AGRAWAL_BEFORE}, seed={seed}, "
            f"perturbation={AGRAWAL_PERTURBATION})",
        },
    ]


def error_stream(data, n: int) -> np.ndarray:
    """Test-then-train GaussianNB over the first n samples; 1 where it erred."""
    model = naive_bayes.GaussianNB()
    errors = np.zeros(n, dtype=np.uint8)
    count = 0
    for i, (x, y) in enumerate(itertools.islice(data, n)):
        errors[i] = model.predict_one(x) != y
        model.learn_one(x, y)
        count += 1
    if count != n:
        raise RuntimeError(f"stream ended after {count} of {n} samples")
    return errors


def cmd_generate(args: argparse.Namespace) -> None:
    n, seed = args.length, args.seed
    if n < 8:
        raise SystemExit("--length must be at least 8")
    os.makedirs(args.out, exist_ok=True)
    total_start = time.perf_counter()
    for spec in build_streams(n, seed):
        name = spec["name"]
        start = time.perf_counter()
        errors = error_stream(spec["data"], n)
        gen_s = time.perf_counter() - start
        errors_path = os.path.join(args.out, f"{name}.errors")
        errors.tofile(errors_path)

        start = time.perf_counter()
        # Detect on what was written, so River sees exactly the file's bytes.
        values, binary = load_values(errors_path)
        detectors = detect_values(values, binary, args.repeats)
        det_s = time.perf_counter() - start

        meta = {
            "name": name,
            "length": n,
            "drift_points": spec["drift_points"],
            "drift_width": spec["drift_width"],
            "classifier": CLASSIFIER,
            "drift_kind": spec["drift_kind"],
            "generator": spec["generator"],
            "seed": seed,
            "error_rate": float(errors.mean()),
            "river": {"version": river.__version__, "repeats": args.repeats, "detectors": detectors},
        }
        with open(os.path.join(args.out, f"{name}.json"), "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        summary = ", ".join(
            f"{k}={len(v['detections'])}" for k, v in detectors.items() if v is not None
        )
        print(
            f"{name}: error_rate={meta['error_rate']:.4f} generate={gen_s:.1f}s "
            f"detect={det_s:.1f}s detections: {summary}",
            file=sys.stderr,
        )
    print(f"total {time.perf_counter() - total_start:.1f}s -> {args.out}", file=sys.stderr)


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="River side of the drift-detector benchmark (ADWIN, DDM, PageHinkley)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="build the labelled error streams and run River on them")
    gen.add_argument("--out", required=True, help="output directory")
    gen.add_argument("--seed", type=int, required=True, help="base seed")
    gen.add_argument("--length", type=int, default=100_000, help="items per stream (default 100000)")
    gen.add_argument("--repeats", type=int, default=REPEATS, help=argparse.SUPPRESS)
    gen.set_defaults(func=cmd_generate)

    det = sub.add_parser("detect", help="run River's detectors over .errors / .f64 files")
    det.add_argument("files", nargs="+", metavar="FILE", help="FILE.errors (u8 0/1) or FILE.f64 (LE f64)")
    det.add_argument("--repeats", type=int, default=REPEATS, help=argparse.SUPPRESS)
    det.set_defaults(func=cmd_detect)

    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    try:
        args.func(args)
    except (OSError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")


if __name__ == "__main__":
    main()
