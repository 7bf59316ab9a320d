"""Independent oracle for point-in-time training data (tests/offline_training.rs).

Recomputes, with DuckDB SQL over the raw input records, the fraud job's features
as of every labeled event, and joins the labels: the table `vigil features export`
must produce. It shares no code with vigil: it decodes the raw records itself and
only takes from vigil which offsets went to the DLQ (accepting or rejecting a
record is tested elsewhere).

Definition (DESIGN.md): the features of event e of key k at time t aggregate k's
accepted events at or before e in its partition's offset order whose event time
lies in (t - W, t]; `secs_since_prev` is the time since k's previous accepted event
in offset order, null past its TTL (1 day). Sums are in fixed point (1e-6), as the
job keeps them, so the values must be identical, not just close.

usage: pit_oracle.py RAW.jsonl DLQ.jsonl LABELS.jsonl OUT.parquet
"""
import base64
import csv
import datetime
import json
import os
import sys
import tempfile

import duckdb

raw_path, dlq_path, labels_path, out_path = sys.argv[1:5]

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def epoch_ms(value):
    if isinstance(value, str):
        t = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (t - EPOCH) // datetime.timedelta(milliseconds=1)
    return int(value)


dead = set()
with open(dlq_path) as f:
    for line in f:
        r = json.loads(line)
        dead.add((r["partition"], r["offset"]))

work = tempfile.mkdtemp()
events_csv = os.path.join(work, "events.csv")
with open(raw_path) as f, open(events_csv, "w", newline="") as out:
    w = csv.writer(out)
    w.writerow(["p", "o", "key", "ts", "amount", "event_id"])
    for line in f:
        r = json.loads(line)
        if (r["partition"], r["offset"]) in dead:
            continue
        e = json.loads(base64.b64decode(r["payload_b64"]))
        w.writerow([r["partition"], r["offset"], e["card_id"], epoch_ms(e["ts"]), repr(float(e["amount"])), e["event_id"]])

labels_csv = os.path.join(work, "labels.csv")
labels = {}
with open(labels_path) as f:
    for line in f:
        try:
            l = json.loads(line)
            labels[str(l["event_id"])] = (bool(l["is_fraud"]), l.get("label_ts"))
        except (ValueError, KeyError, TypeError):
            pass
with open(labels_csv, "w", newline="") as out:
    w = csv.writer(out)
    w.writerow(["event_id", "label", "label_time"])
    for i, (v, t) in labels.items():
        w.writerow([i, "true" if v else "false", "" if t is None else epoch_ms(t)])

db = duckdb.connect()
db.execute(f"""CREATE TABLE ev AS SELECT * FROM read_csv('{events_csv}', header = true,
    columns = {{'p': 'INTEGER', 'o': 'BIGINT', 'key': 'VARCHAR', 'ts': 'BIGINT', 'amount': 'DOUBLE', 'event_id': 'VARCHAR'}})""")
db.execute(f"""CREATE TABLE lab AS SELECT * FROM read_csv('{labels_csv}', header = true,
    columns = {{'event_id': 'VARCHAR', 'label': 'BOOLEAN', 'label_time': 'BIGINT'}})""")


def window(w):
    inside = f"h.ts > e.ts - {w}"
    fixed_sum = f"sum(round(h.amount * 1e6)::HUGEINT) FILTER (WHERE {inside})"
    return {
        "count": f"count(*) FILTER (WHERE {inside})::DOUBLE",
        "sum": f"{fixed_sum}::DOUBLE / 1e6",
        "mean": f"{fixed_sum}::DOUBLE / 1e6 / count(*) FILTER (WHERE {inside})",
        "max": f"max(h.amount) FILTER (WHERE {inside})",
    }


m, h = window(60_000), window(3_600_000)
db.execute(f"""
CREATE TABLE feats AS
WITH prev AS (
    SELECT p, o, ts - lag(ts) OVER (PARTITION BY key, p ORDER BY o) AS gap FROM ev
)
SELECT e.event_id, e.key, e.ts AS event_time,
    {m['count']} AS tx_count_1m, {m['sum']} AS amount_sum_1m, {m['mean']} AS amount_mean_1m, {m['max']} AS amount_max_1m,
    {h['count']} AS tx_count_1h, {h['sum']} AS amount_sum_1h, {h['mean']} AS amount_mean_1h, {h['max']} AS amount_max_1h,
    any_value(CASE WHEN prev.gap <= 86400000 THEN prev.gap::DOUBLE / 1000.0 END) AS secs_since_prev
FROM ev e
JOIN ev h ON h.key = e.key AND h.p = e.p AND h.o <= e.o AND h.ts <= e.ts AND h.ts > e.ts - 3600000
JOIN prev ON prev.p = e.p AND prev.o = e.o
GROUP BY e.event_id, e.key, e.ts, e.p, e.o
""")
db.execute(f"""
COPY (
    SELECT f.event_id, f.key, f.event_time, lab.label, lab.label_time,
        tx_count_1m, amount_sum_1m, amount_mean_1m, amount_max_1m,
        tx_count_1h, amount_sum_1h, amount_mean_1h, amount_max_1h, secs_since_prev
    FROM lab JOIN feats f USING (event_id)
    ORDER BY f.event_time, f.event_id
) TO '{out_path}' (FORMAT PARQUET)
""")
print(db.execute(f"SELECT count(*) FROM read_parquet('{out_path}')").fetchone()[0], "oracle rows")
