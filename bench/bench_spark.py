"""Spark engine figures for docs/spark.md: Spark against the local engine on one machine,
and Spark's time as the data grows on ``local[1]`` and ``local[2]``.

    python bench/bench_spark.py                                   # ML-100K and medium, both engines
    python bench/bench_spark.py --data large --data medium --masters 'local[1],local[2]' --engines spark
    python bench/bench_spark.py --data sample --iterations 2      # a quick check that it runs
    python bench/bench_spark.py --data large --engines spark --masters 'local[1],local[2]' \
        --iterations 3 --steps prep,train                         # time per iteration only

Each data set (``ml100k``: ../shared/data/ml-100k or $RECLI_ML100K; ``sample``: the bundled
sample; ``small``/``medium``/``large``: the generator's presets, see ``recli bench``; or a
CSV path) goes through the same pipeline per engine, every command a separate process timed
from outside (JVM start-up included, as a user sees it):

    recli prep IN --split leave-last --test-size 1 --output-format parquet --out P  [--engine spark ...]
    recli train P/train.parquet --model als --factors F --iterations N -o M           [--engine spark ...]
    recli recommend M --all-users -k 10 -o R                                          [--engine spark ...]
    recli eval --model M --test TEST -k 10                                            (local, NDCG@10)

``--steps`` picks which of the four run (the later ones need the earlier ones' outputs);
the Spark commands get ``--spark-conf spark.driver.memory=16g`` unless ``--spark-conf`` says
otherwise (in ``local[N]`` the driver is the executor: Spark's 1 GiB default does not
hold the medium shape).

Local ALS runs with ``solver=cholesky`` and, where recli has it, ``scale_regularization=true``
(MLlib's objective), so both engines fit the same model. Time per iteration is the model's
``fit_seconds / iterations`` (``recli info``). Results are printed as a Markdown table and
written to OUT/results.json. Run it on a quiet machine: a loaded one makes Spark's many
threads look worse than they are.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRESETS = {"small": (10_000, 2_000, 200_000), "medium": (100_000, 20_000, 5_000_000), "large": (500_000, 100_000, 20_000_000)}


def recli(*args: str, env: dict | None = None) -> tuple[float, str]:
    """Run ``python -m recli ARGS``; (wall seconds, stdout). A failure stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "recli", "-q", *args], capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): recli {' '.join(args)}\n{proc.stderr}")
    return time.perf_counter() - start, proc.stdout


def dataset(name: str, work: Path) -> Path:
    """A CSV with a header for data set ``name`` (generated or converted once, untimed)."""
    import polars as pl

    path = work / f"{name}.csv"
    if path.exists():
        return path
    if name == "sample":
        return REPO / "sample_data" / "interactions.csv"
    if name == "ml100k":
        src = Path(os.environ.get("RECLI_ML100K", REPO.parent / "shared" / "data" / "ml-100k")) / "u.data"
        pl.read_csv(src, separator="\t", has_header=False, new_columns=["user", "item", "rating", "timestamp"]).write_csv(path)
    elif name in PRESETS:
        from recli.data.synth import interactions

        interactions(*PRESETS[name], seed=42).write_csv(path)
    else:
        return Path(name)
    return path


def spark_args(engine: str, master: str, conf: list[str]) -> list[str]:
    if engine == "local":
        return []
    return ["--engine", "spark", "--spark-master", master, *[a for c in conf for a in ("--spark-conf", c)]]


def test_file(prep_dir: Path) -> Path:
    """The test split as one Parquet file (Spark writes a folder of parts; eval reads files)."""
    import polars as pl

    path = prep_dir / "test.parquet"
    if path.is_file():
        return path
    one = prep_dir.parent / f"{prep_dir.name}-test.parquet"
    pl.read_parquet(path / "*.parquet").write_parquet(one)
    return one


def als_params() -> list[str]:
    _, out = recli("train", "--model", "als", "--show-params", "--format", "json")
    names = {row["name"] for row in json.loads(out)}
    return ["-p", "solver=cholesky"] + (["-p", "scale_regularization=true"] if "scale_regularization" in names else [])


def pipeline(data: str, csv: Path, engine: str, master: str, args: argparse.Namespace, work: Path) -> dict:
    tag = f"{data}-{engine}-{master.replace('[', '').replace(']', '').replace('*', 'all')}"
    prep, model, recs = work / f"{tag}.prep", work / f"{tag}.model", work / f"{tag}.recs"
    extra = spark_args(engine, master, args.spark_conf or ["spark.driver.memory=16g"])
    steps = args.steps.split(",")
    t_prep = t_train = t_rec = 0.0
    if "prep" in steps:
        t_prep, _ = recli("prep", str(csv), "--split", "leave-last", "--test-size", "1", "--output-format", "parquet",
                          "--out", str(prep), "--force", *extra)
    params = als_params() if engine == "local" else []
    if "train" in steps:
        t_train, _ = recli("train", str(prep / "train.parquet"), "--model", "als", "--factors", str(args.factors),
                           "--iterations", str(args.iterations), "--regularization", str(args.regularization), *params,
                           "-o", str(model), "--force", *extra)
    rec_out = [str(recs), "--force"] if engine == "spark" else [str(recs) + ".parquet"]
    if "recommend" in steps:
        t_rec, _ = recli("recommend", str(model), "--all-users", "-k", "10", "-o", *rec_out, *extra)
    ndcg = None
    if "eval" in steps:
        _, out = recli("eval", "--model", str(model), "--test", str(test_file(prep)), "-k", "10", "--format", "json")
        ndcg = _ndcg(json.loads(out))
    _, info = recli("info", str(model), "--format", "json")
    meta = json.loads(info)
    return {"data": data, "engine": engine, "master": master if engine == "spark" else "-",
            "interactions": meta["counts"]["interactions"], "users": meta["counts"]["users"], "items": meta["counts"]["items"],
            "prep_s": round(t_prep, 2), "train_s": round(t_train, 2), "recommend_all_s": round(t_rec, 2),
            "end_to_end_s": round(t_prep + t_train + t_rec, 2),
            "s_per_iteration": round(meta["fit_seconds"] / args.iterations, 3), "ndcg@10": ndcg}


def _ndcg(rows: list[dict]) -> float | None:
    """NDCG@10 from ``recli eval --format json`` (one row per metric and k)."""
    return next((round(r["value"], 4) for r in rows if r["metric"] == "ndcg" and r["k"] == 10), None)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", help="ml100k, sample, small, medium, large or a CSV (repeatable; default ml100k, medium)")
    ap.add_argument("--engines", default="local,spark")
    ap.add_argument("--masters", default="local[*]", help="Spark masters, comma-separated, e.g. 'local[1],local[2]'")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--regularization", type=float, default=0.05)
    ap.add_argument("--steps", default="prep,train,recommend,eval", help="which of prep,train,recommend,eval run")
    ap.add_argument("--spark-conf", action="append", help="KEY=VALUE for the Spark commands (repeatable)")
    ap.add_argument("--out", default="/tmp/recli-spark-bench")
    args = ap.parse_args(argv)
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for data in args.data or ["ml100k", "medium"]:
        csv = dataset(data, work)
        for engine in args.engines.split(","):
            for master in (args.masters.split(",") if engine == "spark" else ["-"]):
                rows.append(pipeline(data, csv, engine, master, args, work))
                print(json.dumps(rows[-1]), file=sys.stderr)
    (work / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
