#!/usr/bin/env python3
"""River's training throughput for `train-bench --river`: LogisticRegression.learn_one
(SGD 0.01, no scaler) on random d-dimensional samples. Prints samples/s as JSON.

Usage: river_train.py D SAMPLES
"""
import json
import random
import sys
import time

from river import linear_model, optim

d, n = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(7)
rows = [({f"x{j}": rng.uniform(-3, 3) for j in range(d)}, rng.random() < 0.05) for _ in range(n)]
model = linear_model.LogisticRegression(optimizer=optim.SGD(0.01))
start = time.perf_counter()
for x, y in rows:
    model.learn_one(x, y)
elapsed = time.perf_counter() - start
print(json.dumps({"samples_per_s": n / elapsed, "river": __import__("river").__version__}))
