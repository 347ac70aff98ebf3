"""``recli bench``: speed, memory and quality figures on your own data, with peers."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from recli.cli._options import InputFormatOpt, ItemColOpt, Quiet, SepOpt, TimeColOpt, UserColOpt, Verbose

app = typer.Typer(add_completion=False)

_EPILOG = ("Exit codes: 0 ok (skipped cells are noted, not errors), 2 bad input or options, "
           "3 --check parity beyond tolerance. Boundaries and schema: docs/benchmarks.md.")


@app.command(epilog=_EPILOG)
def bench(
    data: Annotated[Optional[str], typer.Argument(help="Interaction file (user,item[,timestamp]); or use --synthetic.", show_default=False)] = None,
    synthetic: Annotated[Optional[str], typer.Option("--synthetic", help="Generated data: small, medium (100k×20k×5M), large (500k×100k×20M) or USERSxITEMSxNNZ; comma-separated for several sizes.")] = None,
    models: Annotated[str, typer.Option("--models", "-m", help="Comma-separated models, e.g. als,bpr,itemknn.")] = "als",
    threads: Annotated[str, typer.Option("--threads", help="Comma-separated thread counts (0 = every core), e.g. 1,2.")] = "0",
    factors: Annotated[str, typer.Option("--factors", help="Comma-separated factor counts (models with factors), e.g. 32,64,128.")] = "64",
    device: Annotated[str, typer.Option("--device", help="Comma-separated devices: cpu, gpu, auto.")] = "cpu",
    dtype: Annotated[str, typer.Option("--dtype", help="Comma-separated factor storage types: float32, float16, bfloat16; each row at another type than float32 gets ndcg_delta against float32 (always run).")] = "float32",
    repeat: Annotated[int, typer.Option("--repeat", help="Repeats of each measure (medians are reported).")] = 3,
    against: Annotated[Optional[str], typer.Option("--against", help="Peers measured at the same boundary: implicit, lightfm.")] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Model parameter key=value (repeatable; applies to the models that have it).")] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="List length of the recommend measures.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generator, the holdout and the models.")] = 42,
    test_size: Annotated[float, typer.Option("--test-size", help="Share of each user's rows held out for NDCG@10 / recall@10.")] = 0.2,
    machine: Annotated[bool, typer.Option("--machine", help="Measure this machine's GEMM GFLOP/s and copy GB/s; rows then show their share of these roofs.")] = False,
    wait_quiet: Annotated[float, typer.Option("--wait-quiet", help="Wait up to SECONDS for a quiet machine (load ≤ half the cores) before each pair.")] = 0.0,
    check: Annotated[Optional[str], typer.Option("--check", help="'parity': compare every backend of each model with the CPU kernels (exit 3 beyond tolerance).")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="Full results: csv, json or markdown (default: from -o's extension, else csv).")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write the full results here ('-' = stdout).")] = None,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Write PNG charts into this folder (needs matplotlib).")] = None,
    from_report: Annotated[Optional[list[str]], typer.Option("--from-report", help="Chart saved reports (JSON or CSV from -o; repeatable, e.g. one per data set) into --plot DIR instead of measuring.")] = None,
    input_format: InputFormatOpt = None,
    sep: SepOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    time_col: TimeColOpt = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Measure fit, recommend, eval and prep (time, peak memory, quality) over a matrix of
    models × threads × factors × devices × dtypes, each measure in a fresh process, optionally
    interleaved with peer libraries.

    Rows are marked noisy when the machine was busy; ratios against peers are the
    headline, absolute times hold for the machine they ran on.
    """
    from recli.cli import _bench_output as out
    from recli.cli._options import read_options
    from recli.stages.bench import BenchRequest

    if from_report:
        out.plot_reports(from_report, plot, measuring=data is not None or synthetic is not None)
        return
    fmt = out.check_output(fmt, output)
    req = BenchRequest(data=data, synthetic=synthetic, models=models, threads=threads, factors=factors, device=device,
                       dtype=dtype, repeat=repeat, against=against, params=list(param or []), k=k, seed=seed, test_size=test_size,
                       machine=machine, wait_quiet=wait_quiet,
                       read=read_options(input_format, sep, user_col=user_col, item_col=item_col, time_col=time_col))
    if check is not None:
        out.run_parity(req, check, fmt, output)
        return
    out.run_bench(req, fmt, output, plot)
