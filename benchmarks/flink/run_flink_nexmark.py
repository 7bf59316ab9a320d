#!/usr/bin/env python3
"""Run Nexmark queries (official nexmark-flink SQL, adapted to a JSON-lines file source) in
Apache Flink SQL via PyFlink, streaming mode, parallelism 1, one task slot, and time each query.

Usage:
  venv/bin/python run_flink_nexmark.py --events-file data/events_100k.jsonl \
      --queries q0,q1,q2,q3,q4,q5,q7,q8,q9 --out results.json

Each query is its own Flink job (INSERT INTO a 'blackhole' sink) submitted to ONE reused
TableEnvironment (one JVM). Timing = wall clock from execute_sql() (plan + submit) until the job
has finished (the file source is bounded, so the streaming job ends). JVM startup is reported
separately ("jvm_and_tenv_startup_s"); the per-job fixed overhead (local MiniCluster start,
planning, deployment) is shown by the 'noop' job (1-row VALUES -> blackhole), and the source/JSON
share by the 'read' job (all columns of the file -> blackhole) and 'count' (streaming COUNT(*)).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

ALL_QUERIES = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q9", "q11", "q14", "q17", "q18", "q19", "q20"]
BASELINES = ["noop", "read", "count"]

# ---------------------------------------------------------------- DDL
SOURCE_DDL = """
CREATE TEMPORARY TABLE nexmark_events (
    person ROW<
        id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR,
        city VARCHAR, state VARCHAR, `dateTime` BIGINT, extra VARCHAR>,
    auction ROW<
        id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT,
        `dateTime` BIGINT, expires BIGINT, seller BIGINT, category BIGINT, extra VARCHAR>,
    bid ROW<
        auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` BIGINT, extra VARCHAR>,
    `dateTime` AS TO_TIMESTAMP_LTZ(
        CASE
            WHEN bid IS NOT NULL THEN bid.`dateTime`
            WHEN auction IS NOT NULL THEN auction.`dateTime`
            ELSE person.`dateTime`
        END, 3),
    WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '{wm_s}' SECOND
) WITH (
    'connector' = 'filesystem',
    'path' = '{path}',
    'format' = 'json',
    'json.fail-on-missing-field' = 'false',
    'json.ignore-parse-errors' = 'false'
)
"""

VIEWS_DDL = [
    """
CREATE TEMPORARY VIEW person AS
SELECT person.id, person.name, person.emailAddress, person.creditCard, person.city, person.state,
       `dateTime`, person.extra
FROM nexmark_events WHERE person IS NOT NULL
""",
    """
CREATE TEMPORARY VIEW auction AS
SELECT auction.id, auction.itemName, auction.description, auction.initialBid, auction.reserve,
       `dateTime`, TO_TIMESTAMP_LTZ(auction.expires, 3) AS expires, auction.seller,
       auction.category, auction.extra
FROM nexmark_events WHERE auction IS NOT NULL
""",
    """
CREATE TEMPORARY VIEW bid AS
SELECT bid.auction, bid.bidder, bid.price, `dateTime`, bid.extra
FROM nexmark_events WHERE bid IS NOT NULL
""",
]

# ---------------------------------------------------------------- queries
# Text of nexmark/nexmark nexmark-flink/src/main/resources/queries/q*.sql (commit 6b3646c).
# Only change: sink columns declared TIMESTAMP(3) there are TIMESTAMP_LTZ(3) here, because our
# rowtime is TIMESTAMP_LTZ(3) (epoch-ms input); see README.  Sink name = nexmark_<q>.
Q = {}
Q["q0"] = ("""
CREATE TEMPORARY TABLE nexmark_q0 (
  auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP_LTZ(3), extra VARCHAR
) WITH ('connector' = 'blackhole')""",
"""SELECT auction, bidder, price, `dateTime`, extra FROM bid""")

Q["q1"] = ("""
CREATE TEMPORARY TABLE nexmark_q1 (
  auction BIGINT, bidder BIGINT, price DECIMAL(23, 3), `dateTime` TIMESTAMP_LTZ(3), extra VARCHAR
) WITH ('connector' = 'blackhole')""",
"""SELECT
    auction,
    bidder,
    0.908 * price as price, -- convert dollar to euro
    `dateTime`,
    extra
FROM bid""")

Q["q2"] = ("""
CREATE TEMPORARY TABLE nexmark_q2 (auction BIGINT, price BIGINT) WITH ('connector' = 'blackhole')""",
"""SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0""")

Q["q3"] = ("""
CREATE TEMPORARY TABLE nexmark_q3 (name VARCHAR, city VARCHAR, state VARCHAR, id BIGINT)
WITH ('connector' = 'blackhole')""",
"""SELECT
    P.name, P.city, P.state, A.id
FROM
    auction AS A INNER JOIN person AS P on A.seller = P.id
WHERE
    A.category = 10 and (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')""")

Q["q4"] = ("""
CREATE TEMPORARY TABLE nexmark_q4 (id BIGINT, final BIGINT) WITH ('connector' = 'blackhole')""",
"""SELECT
    Q.category,
    AVG(Q.final)
FROM (
    SELECT MAX(B.price) AS final, A.category
    FROM auction A, bid B
    WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
    GROUP BY A.id, A.category
) Q
GROUP BY Q.category""")

Q["q5"] = ("""
CREATE TEMPORARY TABLE nexmark_q5 (auction BIGINT, num BIGINT) WITH ('connector' = 'blackhole')""",
"""SELECT AuctionBids.auction, AuctionBids.num
 FROM (
   SELECT
     auction,
     count(*) AS num,
     window_start AS starttime,
     window_end AS endtime
     FROM TABLE(
             HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
     GROUP BY auction, window_start, window_end
 ) AS AuctionBids
 JOIN (
   SELECT
     max(CountBids.num) AS maxn,
     CountBids.starttime,
     CountBids.endtime
   FROM (
     SELECT
       count(*) AS num,
       window_start AS starttime,
       window_end AS endtime
     FROM TABLE(
                HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
     GROUP BY auction, window_start, window_end
     ) AS CountBids
   GROUP BY CountBids.starttime, CountBids.endtime
 ) AS MaxBids
 ON AuctionBids.starttime = MaxBids.starttime AND
    AuctionBids.endtime = MaxBids.endtime AND
    AuctionBids.num >= MaxBids.maxn""")

Q["q7"] = ("""
CREATE TEMPORARY TABLE nexmark_q7 (
  auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP_LTZ(3), extra VARCHAR
) WITH ('connector' = 'blackhole')""",
# NB: official q7 selects B.price before B.bidder (so the sink's 'bidder' column gets the price);
# kept verbatim.
"""SELECT B.auction, B.price, B.bidder, B.`dateTime`, B.extra
from bid B
JOIN (
  SELECT MAX(price) AS maxprice, window_end as `dateTime`
  FROM TABLE(
          TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end
) B1
ON B.price = B1.maxprice
WHERE B.`dateTime` BETWEEN B1.`dateTime`  - INTERVAL '10' SECOND AND B1.`dateTime`""")

Q["q8"] = ("""
CREATE TEMPORARY TABLE nexmark_q8 (id BIGINT, name VARCHAR, stime TIMESTAMP_LTZ(3))
WITH ('connector' = 'blackhole')""",
"""SELECT P.id, P.name, P.starttime
FROM (
  SELECT id, name,
        window_start AS starttime,
        window_end AS endtime
  FROM TABLE(
            TUMBLE(TABLE person, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
  GROUP BY id, name, window_start, window_end
) P
JOIN (
  SELECT seller,
        window_start AS starttime,
        window_end AS endtime
  FROM TABLE(
        TUMBLE(TABLE auction, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
  GROUP BY seller, window_start, window_end
) A
ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime""")

Q["q9"] = ("""
CREATE TEMPORARY TABLE nexmark_q9 (
  id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT,
  `dateTime` TIMESTAMP_LTZ(3), expires TIMESTAMP_LTZ(3), seller BIGINT, category BIGINT,
  extra VARCHAR, auction BIGINT, bidder BIGINT, price BIGINT, bid_dateTime TIMESTAMP_LTZ(3),
  bid_extra VARCHAR
) WITH ('connector' = 'blackhole')""",
"""SELECT
    id, itemName, description, initialBid, reserve, `dateTime`, expires, seller, category, extra,
    auction, bidder, price, bid_dateTime, bid_extra
FROM (
   SELECT A.*, B.auction, B.bidder, B.price, B.`dateTime` AS bid_dateTime, B.extra AS bid_extra,
     ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.`dateTime` ASC) AS rownum
   FROM auction A, bid B
   WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
)
WHERE rownum <= 1""")

# q11: the official text's legacy group window (GROUP BY SESSION(...)) as the
# session window table function of Flink 1.19+, same result.
Q["q11"] = ("""
CREATE TEMPORARY TABLE nexmark_q11 (
  bidder BIGINT, bid_count BIGINT, starttime TIMESTAMP_LTZ(3), endtime TIMESTAMP_LTZ(3)
) WITH ('connector' = 'blackhole')""",
"""SELECT bidder, count(*) as bid_count, window_start AS starttime, window_end AS endtime
FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY bidder, window_start, window_end""")

# q14, q17-q20: the official text without the bid's `channel` and `url` (Beam's
# generator, which vigil's follows, makes none), and q14's `count_char(extra, 'c')`
# (a Java UDF in the official suite) as built-in string functions.
Q["q14"] = ("""
CREATE TEMPORARY TABLE nexmark_q14 (
  auction BIGINT, bidder BIGINT, price DECIMAL(23, 3), bidTimeType VARCHAR,
  `dateTime` TIMESTAMP_LTZ(3), extra VARCHAR, c_counts BIGINT
) WITH ('connector' = 'blackhole')""",
"""SELECT
    auction,
    bidder,
    0.908 * price as price,
    CASE
        WHEN HOUR(`dateTime`) >= 8 AND HOUR(`dateTime`) <= 18 THEN 'dayTime'
        WHEN HOUR(`dateTime`) <= 6 OR HOUR(`dateTime`) >= 20 THEN 'nightTime'
        ELSE 'otherTime'
    END AS bidTimeType,
    `dateTime`,
    extra,
    CAST(CHAR_LENGTH(extra) - CHAR_LENGTH(REPLACE(extra, 'c', '')) AS BIGINT) AS c_counts
FROM bid
WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000""")

Q["q17"] = ("""
CREATE TEMPORARY TABLE nexmark_q17 (
  auction BIGINT, `day` VARCHAR, total_bids BIGINT, rank1_bids BIGINT, rank2_bids BIGINT,
  rank3_bids BIGINT, min_price BIGINT, max_price BIGINT, avg_price BIGINT, sum_price BIGINT
) WITH ('connector' = 'blackhole')""",
"""SELECT
     auction,
     DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') as `day`,
     count(*) AS total_bids,
     count(*) filter (where price < 10000) AS rank1_bids,
     count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
     count(*) filter (where price >= 1000000) AS rank3_bids,
     min(price) AS min_price,
     max(price) AS max_price,
     avg(price) AS avg_price,
     sum(price) AS sum_price
FROM bid
GROUP BY auction, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd')""")

Q["q18"] = ("""
CREATE TEMPORARY TABLE nexmark_q18 (
  auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP_LTZ(3), extra VARCHAR
) WITH ('connector' = 'blackhole')""",
"""SELECT auction, bidder, price, `dateTime`, extra
 FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY `dateTime` DESC) AS rank_number
       FROM bid)
 WHERE rank_number <= 1""")

Q["q19"] = ("""
CREATE TEMPORARY TABLE nexmark_q19 (
  auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP_LTZ(3), extra VARCHAR,
  rank_number BIGINT
) WITH ('connector' = 'blackhole')""",
"""SELECT * FROM
(SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number FROM bid)
WHERE rank_number <= 10""")

Q["q20"] = ("""
CREATE TEMPORARY TABLE nexmark_q20 (
  auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP_LTZ(3), extra VARCHAR,
  itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT,
  auction_dateTime TIMESTAMP_LTZ(3), expires TIMESTAMP_LTZ(3), seller BIGINT, category BIGINT,
  auction_extra VARCHAR
) WITH ('connector' = 'blackhole')""",
"""SELECT
    auction, bidder, price, B.`dateTime`, B.extra,
    itemName, description, initialBid, reserve, A.`dateTime`, expires, seller, category, A.extra
FROM
    bid AS B INNER JOIN auction AS A on B.auction = A.id
WHERE A.category = 10""")

# baselines
Q["noop"] = ("""
CREATE TEMPORARY TABLE nexmark_noop (x INT) WITH ('connector' = 'blackhole')""",
"""SELECT * FROM (VALUES (1)) AS t(x)""")
Q["read"] = ("""
CREATE TEMPORARY TABLE nexmark_read WITH ('connector' = 'blackhole') LIKE nexmark_events (EXCLUDING ALL)""",
"""SELECT person, auction, bid FROM nexmark_events""")
Q["count"] = ("""
CREATE TEMPORARY TABLE nexmark_count (n BIGINT) WITH ('connector' = 'blackhole')""",
"""SELECT COUNT(*) AS n FROM nexmark_events""")


def java_version_of(java_home):
    import subprocess
    exe = os.path.join(java_home, "bin", "java") if java_home else "java"
    try:
        p = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30)
        return (p.stderr or p.stdout).strip().splitlines()[0]
    except Exception as e:  # pragma: no cover
        return f"unknown ({e})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events-file", required=True)
    ap.add_argument("--queries", default=",".join(ALL_QUERIES),
                    help="comma list from %s and baselines %s" % (ALL_QUERIES, BASELINES))
    ap.add_argument("--out", default="results.json")
    ap.add_argument("--baselines", default="noop,read,count",
                    help="baseline jobs to time too (comma list, '' for none)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per query; min and median reported")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up 'read' job")
    ap.add_argument("--watermark-delay-ms", type=int, default=0,
                    help="WATERMARK FOR dateTime AS dateTime - INTERVAL 'X/1000' SECOND (events are "
                         "in time order, so 0 loses nothing; official nexmark uses 4000)")
    ap.add_argument("--java-home", default=os.environ.get("JAVA_HOME", ""),
                    help="JDK to run Flink on (default: $JAVA_HOME, else 'java' on PATH)")
    ap.add_argument("--jvm-opts", default="", help="extra JVM options for the Flink JVM, e.g. -Xmx4g")
    ap.add_argument("--log-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "logs"),
                    help="Flink log directory (FLINK_LOG_DIR)")
    ap.add_argument("--mini-batch", action="store_true",
                    help="enable the official nexmark table settings (mini-batch 2s/50000, "
                         "distinct-agg split); default off")
    ap.add_argument("--collect", action="store_true",
                    help="correctness aid: instead of timing, run each query's SELECT with collect() "
                         "and report output row counts per RowKind (slow for big outputs)")
    a = ap.parse_args()

    events_file = os.path.abspath(a.events_file)
    if not os.path.isfile(events_file):
        sys.exit(f"no such file: {events_file}")
    queries = [q.strip() for q in a.queries.split(",") if q.strip()]
    baselines = [q.strip() for q in a.baselines.split(",") if q.strip()]
    for q in queries + baselines:
        if q not in Q:
            sys.exit(f"unknown query {q}; known: {sorted(Q)}")

    t = time.perf_counter()
    with open(events_file, "rb") as f:
        n_events = sum(1 for _ in f)
    count_s = time.perf_counter() - t

    if a.java_home:
        os.environ["JAVA_HOME"] = a.java_home
        os.environ["PATH"] = os.path.join(a.java_home, "bin") + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("FLINK_LOG_DIR", a.log_dir)
    os.makedirs(os.environ["FLINK_LOG_DIR"], exist_ok=True)
    if a.jvm_opts:
        # read by pyflink's gateway launcher (pyflink/pyflink_gateway_server.py)
        os.environ["JVM_ARGS"] = a.jvm_opts

    from pyflink.common import Configuration
    from pyflink.table import EnvironmentSettings, TableEnvironment
    import pyflink.version

    wm_s = "%d.%03d" % divmod(a.watermark_delay_ms, 1000)
    settings = {
        "execution.runtime-mode": "streaming",
        "parallelism.default": "1",
        "taskmanager.numberOfTaskSlots": "1",
        "pipeline.object-reuse": "true",
        "state.backend.type": "hashmap",
        "execution.checkpointing.interval": "(none: checkpointing off)",
        "table.exec.resource.default-parallelism": "1",
        # HOUR() and DATE_FORMAT() of a TIMESTAMP_LTZ (q14, q17) in UTC, as vigil's
        "table.local-time-zone": "UTC",
        "watermark": f"`dateTime` - INTERVAL '{wm_s}' SECOND",
    }
    conf = Configuration()
    for k, v in settings.items():
        if "." in k and not v.startswith("("):
            conf.set_string(k, v)
    if a.mini_batch:
        extra = {"table.exec.mini-batch.enabled": "true",
                 "table.exec.mini-batch.allow-latency": "2s",
                 "table.exec.mini-batch.size": "50000",
                 "table.optimizer.distinct-agg.split.enabled": "true"}
        for k, v in extra.items():
            conf.set_string(k, v)
        settings.update(extra)

    t0 = time.perf_counter()
    env_settings = EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(conf).build()
    t_env = TableEnvironment.create(env_settings)
    startup_s = time.perf_counter() - t0

    from pyflink.java_gateway import get_gateway
    jvm = get_gateway().jvm
    sysprop = jvm.java.lang.System.getProperty
    java_info = {
        "java.version": sysprop("java.version"),
        "java.vm.name": sysprop("java.vm.name"),
        "java.vendor": sysprop("java.vendor"),
        "java.home": sysprop("java.home"),
        "max_heap_mb": int(jvm.java.lang.Runtime.getRuntime().maxMemory() // (1 << 20)),
        "available_processors": int(jvm.java.lang.Runtime.getRuntime().availableProcessors()),
    }
    try:
        flink_version_jvm = jvm.org.apache.flink.runtime.util.EnvironmentInformation.getVersion()
    except Exception:
        flink_version_jvm = None

    t_env.execute_sql(SOURCE_DDL.format(path=events_file.replace("'", "''"), wm_s=wm_s))
    for v in VIEWS_DDL:
        t_env.execute_sql(v)
    created = set()

    def ensure_sink(q):
        if q not in created:
            t_env.execute_sql(Q[q][0])
            created.add(q)

    def run_timed(q):
        ensure_sink(q)
        stmt = f"INSERT INTO nexmark_{q}\n{Q[q][1]}"
        t1 = time.perf_counter()
        res = t_env.execute_sql(stmt)
        t_submitted = time.perf_counter()
        res.wait()
        t2 = time.perf_counter()
        net_ms = None
        try:
            net_ms = res.get_job_client().get_job_execution_result().result().get_net_runtime()
        except Exception:
            pass
        return {"seconds": t2 - t1, "submit_s": t_submitted - t1,
                "flink_net_runtime_s": (net_ms / 1000.0) if net_ms is not None else None}

    def run_collect(q):
        # iterate the Java-side result (avoids PyFlink's row pickling, which fails on
        # TIMESTAMP_LTZ/Instant values in 2.3.0); only the RowKind of each row is read.
        t1 = time.perf_counter()
        res = t_env.execute_sql(Q[q][1])
        it = res._j_table_result.collect()
        kinds = {}
        rows = 0
        try:
            while it.hasNext():
                k = it.next().getKind().shortString()
                kinds[k] = kinds.get(k, 0) + 1
                rows += 1
        finally:
            it.close()
        if kinds.get("+U", 0) and not kinds.get("-U", 0):   # upsert changelog (e.g. q9 top-1)
            final = kinds.get("+I", 0) - kinds.get("-D", 0)
        else:
            final = kinds.get("+I", 0) + kinds.get("+U", 0) - kinds.get("-U", 0) - kinds.get("-D", 0)
        return {"seconds_incl_collect": time.perf_counter() - t1, "changelog_rows": rows,
                "row_kinds": kinds, "final_rows": final}

    header = {
        "flink_version": pyflink.version.__version__,
        "flink_version_jvm": flink_version_jvm,
        "java": java_info,
        "java_version_line": java_version_of(a.java_home) if a.java_home else java_version_of(""),
        "python": platform.python_version(),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "events_file": events_file,
        "events": n_events,
        "events_file_bytes": os.path.getsize(events_file),
        "settings": settings,
        "jvm_and_tenv_startup_s": round(startup_s, 3),
        "timing": ("seconds = wall time from execute_sql() (planning + local MiniCluster start + "
                   "submission) until the job finished, same JVM/TableEnvironment reused (JVM startup "
                   "excluded, see jvm_and_tenv_startup_s); each job starts its own local MiniCluster "
                   "(see 'noop'). job_net_runtime_s = JobExecutionResult.getNetRuntime() (job "
                   "RUNNING..FINISHED in the cluster: deployment + operator setup + processing). "
                   "events_per_s = events / seconds, events_per_s_net = events / job_net_runtime_s. "
                   "Median over --repeat runs."),
    }
    print(json.dumps({k: header[k] for k in ("flink_version", "java", "events", "settings",
                                             "jvm_and_tenv_startup_s")}, indent=1), flush=True)

    results = {}
    if a.collect:
        for q in queries:
            r = run_collect(q)
            results[q] = r
            print(f"{q:6s} rows: {r['changelog_rows']} changelog, final {r['final_rows']} {r['row_kinds']}"
                  f"  ({r['seconds_incl_collect']:.2f}s)", flush=True)
    else:
        if not a.no_warmup:
            ensure_sink("read")
            w = run_timed("read")
            header["warmup_read_s"] = round(w["seconds"], 3)
            print(f"warm-up read job: {w['seconds']:.2f}s", flush=True)
        order = baselines + [q for q in queries if q not in baselines]
        for q in order:
            runs = []
            for i in range(a.repeat):
                runs.append(run_timed(q))
            secs = [r["seconds"] for r in runs]
            nets = [r["flink_net_runtime_s"] for r in runs if r["flink_net_runtime_s"] is not None]
            med = statistics.median(secs)
            net = statistics.median(nets) if nets else None
            r = {
                "seconds": round(med, 3),
                "events_per_s": round(n_events / med, 1),
                "job_net_runtime_s": None if net is None else round(net, 3),
                "events_per_s_net": None if not net else round(n_events / net, 1),
                "all_seconds": [round(s, 3) for s in secs],
                "all_job_net_runtime_s": [round(x, 3) for x in nets],
                "plan_and_submit_s": [round(x["submit_s"], 3) for x in runs],
                "kind": "baseline" if q in BASELINES else "query",
            }
            results[q] = r
            print(f"{q:6s} wall {med:7.2f} s {n_events / med:10.0f} ev/s | job net "
                  f"{net if net is None else round(net, 3)} s "
                  f"{'' if not net else round(n_events / net)} ev/s   runs {r['all_seconds']}", flush=True)

    out = dict(header, mode="collect" if a.collect else "timed", results=results)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
