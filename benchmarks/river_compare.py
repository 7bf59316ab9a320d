#!/usr/bin/env python3
"""River's side of `learn-compare`: progressive validation of
StandardScaler | LogisticRegression on the exact feature vectors vigil served,
in the same order, with the same label delay (in events).

Usage: river_compare.py STREAM.csv DELAY
STREAM.csv: one row per event, the d inputs then the label (-1 = no label).
Prints one JSON object: the predictions' ROC-AUC/PR-AUC and samples/s.
"""
import csv
import json
import sys
import time

from river import linear_model, optim, preprocessing


def main():
    path, delay = sys.argv[1], int(sys.argv[2])
    rows = []
    with open(path) as f:
        for r in csv.reader(f):
            *x, y = r
            rows.append(({f"x{i}": float(v) for i, v in enumerate(x)}, int(y)))
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(0.01))
    preds = []
    start = time.perf_counter()
    learned = 0
    for i, (x, _) in enumerate(rows):
        preds.append(model.predict_proba_one(x).get(True, 0.0))
        j = i - delay
        if j >= 0 and rows[j][1] >= 0:
            model.learn_one(rows[j][0], bool(rows[j][1]))
            learned += 1
    elapsed = time.perf_counter() - start
    print(json.dumps({"preds": preds, "seconds": elapsed, "learned": learned, "river": __import__("river").__version__}))


if __name__ == "__main__":
    main()
