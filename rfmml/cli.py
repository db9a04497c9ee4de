"""The ``rfmml`` command.

``rfmml run CONFIG`` runs an experiment end to end; ``rfmml demo`` runs the
bundled CDNOW experiment; ``features``, ``segment``, ``fit`` and ``predict``
work on a transaction file; ``compare`` reads an experiment back from MLflow;
``report`` rebuilds a run's ``report.html``.
Tables go to standard output, progress and messages to standard error, so the
output can be piped. Bad input exits with status 1 and one line of error
(``--verbose`` shows the traceback).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import click
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from rfmml.errors import DataError, RFMMLError

__all__ = ["main"]

# Piped output is not squeezed to 80 columns: tables stay readable in files and CI logs.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)
_URI_HELP = (
    "MLflow store. Default: $MLFLOW_TRACKING_URI, else the config's tracking_uri, else ./mlflow.db."
)
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}


def _handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into a one-line message and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        verbose = bool(ctx.find_root().params.get("verbose"))
        try:
            with _warnings_to_terminal():
                return func(*args, **kwargs)
        except click.ClickException:
            raise
        except BrokenPipeError:
            # the reader of standard output stopped early (``| head``): stop quietly, as
            # command-line tools do; output still buffered would raise again at exit
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)  # 128 + SIGPIPE, what a shell reports for such a writer
        except RFMMLError as exc:  # every rfmml error is one line for the user
            if verbose:
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
            sys.exit(1)
        except (ValueError, TypeError, KeyError, OSError, RuntimeError) as exc:
            if verbose:
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
            sys.exit(1)

    return wrapper


def _is_count(name: object, values: pd.Series) -> bool:
    """A float column of whole numbers that counts things (shown without decimals)."""
    text = str(name).lower()
    countish = text.startswith("n_") or text in {"count", "customers", "rows", "orders", "k"}
    finite = values.dropna()
    return (
        countish
        and pd.api.types.is_float_dtype(values.dtype)
        and bool((finite == finite.round()).all())
    )


def _cell(value: Any, floatfmt: str, count: bool) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (count and isinstance(value, float)):
        return f"{int(value):,}"
    if isinstance(value, float):
        return floatfmt.format(value)
    return str(value)


def _table(frame: pd.DataFrame, title: str | None = None, floatfmt: str = "{:,.3f}") -> Table:
    table = Table(title=title, title_justify="left")
    index_names = [n or "" for n in frame.index.names]
    for name in index_names:
        table.add_column(str(name), style="bold")
    for col in frame.columns:
        table.add_column(str(col), justify="right")
    counts = [_is_count(col, frame.iloc[:, i]) for i, col in enumerate(frame.columns)]
    # column by column, so an integer column stays integer beside float ones
    columns = [frame.iloc[:, i].tolist() for i in range(frame.shape[1])]
    for r, idx in enumerate(frame.index):
        keys = idx if isinstance(idx, tuple) else (idx,)
        cells = [_cell(columns[c][r], floatfmt, counts[c]) for c in range(frame.shape[1])]
        table.add_row(*map(str, keys), *cells)
    return table


def _print_report(report: Any) -> None:
    """The cleaning summary on standard error: counts dim, notes and removals that matter loud."""
    for line in str(report).splitlines():
        loud = line.startswith("note:") or ("future" in line and not line.startswith("  removed 0"))
        err.print(Text(line, style="yellow" if loud else "dim"), soft_wrap=True)


@contextlib.contextmanager
def _warnings_to_terminal(known: Callable[[], list[str]] = list) -> Iterator[None]:
    """Show the warnings of a command as one ``warning:`` line each (not source lines).

    Warnings whose text ``known()`` already lists (the cleaning report's notes)
    are not repeated.
    """
    with warnings.catch_warnings(record=True) as caught:  # keeps the filters in force
        try:
            yield
        finally:
            seen = set(known())
            for item in caught:
                message = str(item.message)
                if message in seen or issubclass(item.category, DeprecationWarning):
                    continue
                seen.add(message)
                err.print(Text.assemble(("warning: ", "bold yellow"), message), soft_wrap=True)


_READER_KEYS = ("customer", "timestamp", "amount", "group", "order", "quantity", "price",
                "cancellation_prefix", "timestamp_format", "dayfirst", "encoding", "separator",
                "decimal", "observation_end", "allow_end_beyond_data",
                "negative_amounts", "drop_duplicates", "drop_zero_amounts", "status",
                "exclude_status", "since", "until", "normalize_ids", "currency",
                "currency_column")  # fmt: skip


def _read(reader: dict[str, Any]) -> pd.DataFrame:
    """Load the TRANSACTIONS file with the column options; print the cleaning summary."""
    from rfmml.data import read_transactions

    return _load(reader, read_transactions)[0]


def _scan(reader: dict[str, Any]) -> tuple[Any, Any]:
    """Like :func:`_read`, but the cleaned log stays in DuckDB; return it and the report."""
    from rfmml.data import scan_transactions

    return _load(reader, scan_transactions)


def _load(reader: dict[str, Any], loader: Callable[..., Any]) -> tuple[Any, Any]:
    """``loader(TRANSACTIONS, **column options)``; print its cleaning summary.

    Returns the log and its :class:`~rfmml.data.CleaningReport`.
    """
    options = {k: reader[k] for k in _READER_KEYS if k in reader}
    options["amount"] = options.get("amount") or None
    report = None
    with _warnings_to_terminal(lambda: report.notes if report is not None else []):
        log, report = loader(reader["transactions"], **options)
    _print_report(report)
    return log, report


def _progress() -> Progress:
    """The transient progress bar of long commands, on stderr."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


class _Steps:
    """``step(description)`` moves the stage bar on; :meth:`bar` adds a bar of items."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("starting", total=total)
        self.started = False

    def __call__(self, description: str) -> None:
        advance = 1 if self.started else 0
        self.progress.update(self.task, description=description, advance=advance)
        self.started = True

    @contextlib.contextmanager
    def bar(self, description: str, total: int) -> Iterator[Callable[[int, int], None]]:
        """A second bar (e.g. customers scored) under the stages; yields ``advance(done, of)``."""
        task = self.progress.add_task(description, total=total)

        def advance(done: int, of: int) -> None:
            self.progress.update(task, completed=done, total=of)

        try:
            yield advance
        finally:
            self.progress.remove_task(task)


@contextlib.contextmanager
def _stages(total: int) -> Iterator[_Steps]:
    """A progress bar over the stages of a long command; yields ``step(description)``.

    The bar is drawn on a terminal only (rich leaves it out when stderr is a file or
    a pipe) and removed when the command ends.
    """
    with _progress() as progress:
        steps = _Steps(progress, total)
        yield steps
        progress.update(steps.task, completed=total)


def _check_previous(path: str, read_predictions: Callable[..., pd.DataFrame],
                    keys: list[str] | None = None) -> None:  # fmt: skip
    """Refuse an earlier predictions file without the columns the change lists compare.

    With ``keys`` (the rows of this prediction: ``customer_id``, and the group
    column of a pipeline fitted per group), a file whose rows are keyed otherwise
    is refused too, before anything is written.
    """
    import pyarrow.parquet as pq

    previous = read_predictions(path, ("customer_id",))  # a Parquet file, rfmml's metadata
    held = pq.read_schema(path).names
    missing = [c for c in ("customer_id", "segment") if c not in held]
    if missing:
        raise DataError(
            f"--previous {path!r} has no column(s) {missing} (its columns: {held}); pass the "
            "predictions.parquet of an earlier rfmml predict or run; nothing was written"
        )
    theirs = [name for name in previous.index.names if name is not None]
    if keys is not None and theirs and theirs != keys:
        raise DataError(
            f"--previous {path!r} has one row per {theirs}, this prediction one per {keys}: "
            f"the change lists compare the same rows; pass earlier predictions with one row "
            f"per {keys} (a pipeline fitted as this one); nothing was written"
        )


def _list_columns(path: Path) -> pd.DataFrame:
    """The columns of the segment lists (and changes), read back from predictions.parquet."""
    from rfmml.campaign.lists import LIST_COLUMNS

    meta = json.loads(path.with_name("predictions.meta.json").read_text(encoding="utf-8"))
    keys = [k for k in meta.get("index", []) if k in meta["columns"]]
    wanted = [c for c in meta["columns"] if c in (*keys, *LIST_COLUMNS)]
    table = pd.read_parquet(path, columns=wanted)
    if keys:
        table.index = (pd.Index(table[keys[0]], name=keys[0]) if len(keys) == 1
                       else pd.MultiIndex.from_frame(table[keys]))  # fmt: skip
    return table


def _same_file(a: str | Path, b: str | Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _refuse_overwrite(inputs: list[str | None], outputs: list[Path]) -> None:
    """Refuse to write an output over one of the command's input files."""
    for target in outputs:
        for source in inputs:
            if source and _same_file(source, target):
                raise ValueError(
                    f"the output {str(target)!r} is the input file {source!r}; writing it would "
                    "destroy the input. Choose another output path."
                )


def _is_stdout(path: str | None) -> bool:
    """Whether ``path`` is this process's standard output (``-o /dev/stdout``, a pipe)."""
    if not path:
        return False
    try:
        mine, theirs = os.fstat(sys.stdout.fileno()), os.stat(path)
    except (OSError, ValueError, AttributeError):  # no file, or stdout is not a real file
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def _tables_to(output: str | None) -> Console:
    """Where tables go: standard error when the data itself goes to standard output."""
    return err if _is_stdout(output) else out


def _write(frame: pd.DataFrame, path: str) -> None:
    from rfmml.campaign.exports import replacing, to_safe_csv

    target = Path(path)
    if target.suffix.lower() in (".parquet", ".pq"):
        with replacing(target) as temporary:
            frame.to_parquet(temporary)
    else:
        to_safe_csv(frame.reset_index(), target)
    err.print(f"wrote {len(frame):,} rows to {target}")


_DROP_DUPLICATES_HELP = (
    "Drop rows identical to an earlier row (customer, time, amount, group), as in an export "
    "appended twice (default: kept as purchases and counted)."
)
_DROP_ZERO_HELP = "Drop zero-value rows (default: kept as purchases and counted)."


def _tx_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Column-mapping and reading options shared by the commands that read a transaction file."""
    options = [
        click.argument("transactions", type=click.Path()),
        click.option("--customer", default="customer_id", show_default=True,
                     help="Customer id column."),
        click.option("--timestamp", default="timestamp", show_default=True,
                     help="Purchase date/time column."),
        click.option("--amount", default="amount", show_default=True,
                     help="Purchase value column ('' for a log without amounts)."),
        click.option("--group", default=None, help="Optional group column (channel, country)."),
        click.option("--order", default=None,
                     help="Optional order/invoice id column; the lines of an order are summed."),
        click.option("--quantity", default=None,
                     help="Line-item logs: quantity column (amount = quantity x price)."),
        click.option("--price", default=None, help="Line-item logs: unit price column."),
        click.option("--cancellation-prefix", default=None,
                     help="Order ids starting with it are cancellations (e.g. C)."),
        click.option("--status", default=None,
                     help="Optional order state column (e.g. 'Financial Status'), read with "
                          "--exclude-status."),
        click.option("--exclude-status", default=None,
                     help="States of --status that are not purchases, comma-separated (e.g. "
                          "refunded,voided,cancelled): their rows are removed and counted; "
                          "with --order, their whole orders."),
        click.option("--currency", default=None,
                     help="Keep the rows of this currency (e.g. EUR), counted; a log in "
                          "several currencies is refused without it."),
        click.option("--currency-column", default=None,
                     help="Column of the currency codes (default: a column named currency, "
                          "if any)."),
        click.option("--normalize-ids", is_flag=True,
                     help="Lower-case text customer ids, so that Ann@x.com and ann@x.com are "
                          "one customer (counted; default: kept, and counted in a note)."),
        click.option("--since", default=None,
                     help="Drop rows dated before this date, counted (e.g. a mistyped year "
                          "the cleaning report flags)."),
        click.option("--until", default=None,
                     help="Drop rows dated after this date (a date includes its day), "
                          "counted."),
        click.option("--timestamp-format", default=None,
                     help="strftime format, e.g. %Y%m%d; %s: Unix seconds."),
        click.option("--dayfirst/--monthfirst", "dayfirst", default=None,
                     help="Order of dates written 01/03/2010 (default: inferred from the "
                          "column; refused when every date is ambiguous)."),
        click.option("--encoding", default=None, help="Text encoding of a CSV (default UTF-8)."),
        click.option("--separator", default=None,
                     help="CSV field separator (default: the first of , ; tab | that fits)."),
        click.option("--decimal", default=None,
                     help="Decimal mark of a CSV's numbers (default '.'; ',' reads 2,50)."),
        click.option("--observation-end", default=None,
                     help="As-of date; later rows are removed and counted "
                          "(default: last transaction)."),
        click.option("--allow-end-beyond-data", is_flag=True,
                     help="Accept an observation end far past the last transaction."),
        click.option("--negative-amounts", type=click.Choice(["drop", "net", "error"]),
                     default="drop", show_default=True,
                     help="Returns and cancellations: drop them, net them against the "
                          "customer's latest purchase, or stop."),
        click.option("--drop-duplicates", is_flag=True,
                     help=_DROP_DUPLICATES_HELP),
        click.option("--drop-zero-amounts", is_flag=True, help=_DROP_ZERO_HELP),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Show log messages and full tracebacks.")
@click.version_option(package_name="rfmml")
def main(verbose: bool) -> None:
    """Customer value from transaction logs: RFM features, segments, BG/NBD + Gamma-Gamma,
    MLflow experiments and campaign lists.
    """  # noqa: D205
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from rfmml._process import disable_transparent_huge_pages, huge_pages_wanted

    if not huge_pages_wanted():  # batch work zeroes fewer fresh pages (see rfmml._process)
        disable_transparent_huge_pages()
    for noisy in ("mlflow", "alembic", "urllib3", "py4j"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:
        warnings.filterwarnings("ignore", module="mlflow")
        # MLflow's artifact download bars and INFO lines would interleave with rfmml's
        # own progress (mlflow is imported later and sets its loggers from these)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _loaded() -> None:
    """A batch command's imports are done: settle the process for the work.

    Their objects leave the garbage collector's walks (one full collection of
    the 10M-row job: 0.11 s -> 0.02 s), BLAS runs on the calling thread (its
    idle workers spun on the cores rfmml's own threads use: 0.3 CPU s of the
    same job), and freed memory is kept for reuse (fewer page faults). See
    :mod:`rfmml._process`.
    """
    from rfmml._process import freeze_loaded_objects, keep_freed_memory, single_thread_blas

    freeze_loaded_objects()
    single_thread_blas()
    keep_freed_memory()


def _run(config: Any, output: str | None, tracking_uri: str | None) -> Any:
    from rfmml.config import ExperimentConfig, load_config
    from rfmml.pipeline import run_experiment

    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    if cfg.engine == "spark":
        return _run_spark(cfg, output, tracking_uri)
    _loaded()
    total = 6 + len(cfg.segmentations)
    with _progress() as progress:
        task = progress.add_task(f"experiment {cfg.name}", total=total)

        def step(message: str) -> None:
            progress.update(task, description=message, advance=1)

        # Warnings that escape the library's own handling become one plain log line each
        # (no source path); a degenerate model fit is already one such line.
        with warnings.catch_warnings(record=True) as caught:
            result = run_experiment(
                cfg, output_dir=output, tracking_uri=tracking_uri, progress=step
            )
        progress.update(task, completed=total)
    for text in sorted({str(w.message).splitlines()[0] for w in caught}):
        logging.getLogger("rfmml").warning("%s", text)
    _report_run(result)
    _write_report(result)
    return result


def _run_spark(cfg: Any, output: str | None, tracking_uri: str | None) -> Any:
    """``engine = "spark"``: judge the models on the holdout, then refit and score in Spark."""
    from rfmml.config import PURCHASE_MODEL_LABELS
    from rfmml.spark_run import run_spark_experiment

    with _stages(1) as step:
        step(f"experiment {cfg.name} on Spark: holdout, features, segments, models, scoring")
        result = run_spark_experiment(cfg, output_dir=output, tracking_uri=tracking_uri)
    if result.report is not None:
        _print_cleaning(result.report)
    if result.model_comparison is not None:
        name = str(result.chosen_model)
        chosen = PURCHASE_MODEL_LABELS.get(name, name)
        shown = result.model_comparison.drop(columns=["label", "n_params"], errors="ignore")
        out.print(_table(shown, title=f"Purchase models on the holdout period (chosen by "
                         f"{cfg.models.selection}: {chosen})"))  # fmt: skip
    out.print(f"scored {result.n_customers:,} customers on Spark into {result.output_dir}/")
    err.print(f"wrote predictions: {result.predictions} (Parquet, partitioned by segment)")
    err.print(f"wrote the scoring pipeline: {result.model_dir}")
    if result.model_uri is not None:
        err.print(f"logged the scoring model: {result.model_uri}")
    return result


def _print_cleaning(report: Any) -> None:
    """The cleaning summary of a run: rows in, removed by reason, rows out (and notes)."""
    rows = [("rows in", report.rows_in)]
    rows += [(f"removed: {k}", v) for k, v in report.removed.items() if v]
    rows += [(f"merged: {k}", v) for k, v in report.merged.items() if v]
    rows += [(f"flagged (kept): {k}", v) for k, v in report.flagged.items() if v]
    rows.append(("rows out", report.rows_out))
    frame = pd.DataFrame(rows, columns=["step", "rows"]).set_index("step")
    out.print(_table(frame, title="Cleaning"))
    for note in report.notes:
        out.print(Text(f"note: {note}", style="yellow"), soft_wrap=True)


def _write_report(result: Any) -> Path:
    """Print the path of the run's report.html (built and logged by the run itself)."""
    path = Path(result.files["report"])
    out.print(f"\n[bold]Report[/]: {path}")
    return path


def _report_run(result: Any) -> None:
    from rfmml.evaluation import KEY_METRICS
    from rfmml.tracking import ui_command

    cfg = result.config
    if result.report is not None:
        _print_cleaning(result.report)
    cols = [c for c in ("rank", *KEY_METRICS) if c in result.comparison.columns]
    out.print(_table(result.comparison[cols], title=f"Segmentations ranked by "
                     f"{cfg.primary_metric} (holdout {cfg.calibration_end.date()} to "
                     f"{cfg.observation_end.date()})"))  # fmt: skip
    from rfmml.config import PURCHASE_MODEL_LABELS

    pred = result.predictions
    spend = "clv" in pred.columns
    chosen = result.chosen_model or "bgnbd"
    label = PURCHASE_MODEL_LABELS.get(chosen, chosen)
    if result.model_comparison is not None:
        shown = result.model_comparison.drop(columns=["label", "n_params"], errors="ignore")
        out.print(_table(shown, title=f"Purchase models on the holdout period (chosen by "
                         f"{cfg.models.selection}: {label})"))  # fmt: skip
    models = f"{label} + Gamma-Gamma" if spend else f"{label} (no amounts: Gamma-Gamma skipped)"
    out.print(_table(result.model_metrics, title=f"{models} on the holdout period "
                     "(baseline: calibration purchase rate carried forward)"))  # fmt: skip
    if "segment" in pred.columns:
        value = "clv" if spend else "expected_purchases"
        seg = (
            pred.groupby("segment", observed=True)
            .agg(customers=("customer_id", "size"), mean_p_alive=("probability_alive", "mean"),
                 **{f"total_{value}": (value, "sum")}, action=("action", "first"))
            .sort_values(f"total_{value}", ascending=False)
        )  # fmt: skip
        title = (
            f"Customers by segment ({len(pred):,} scored, {'CLV' if spend else 'purchases'} "
            f"over {cfg.models.horizon:g} periods of {cfg.freq})"
        )
        out.print(_table(seg, title=title, floatfmt="{:,.2f}"))
    o = result.output_dir
    out.print(f"\n[bold]Outputs[/] in {o}/")
    for key in ("predictions_parquet", "predictions_csv", "comparison_csv", "comparison_png",
                "model_comparison", "tracking_png", "segment_lists", "segment_changes",
                "transitions_png", "model"):  # fmt: skip
        if key in result.files:
            out.print(f"  {key:<20} {result.files[key]}")
    out.print(f"  {'mlflow model':<20} {result.model_uri} (run {result.runs.get('scoring')})")
    out.print(f"\nOpen the MLflow UI:  {ui_command(result.tracking_uri)}")


def _config_path(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from rfmml.config import bundled_experiments

    if Path(value).is_file() or value in bundled_experiments():
        return value
    raise click.BadParameter(
        f"file {value!r} does not exist and is not a bundled experiment {bundled_experiments()}"
    )


@main.command()
@click.argument("config", callback=_config_path)
@click.option("--output", "-o", default=None, help="Output folder (default: the config's).")
@click.option("--tracking-uri", default=None, help=_URI_HELP)
@_handle_errors
def run(config: str, output: str | None, tracking_uri: str | None) -> None:
    """Run the experiment CONFIG (a TOML file, or a bundled one: cdnow, online_retail).

    With engine = "spark" in CONFIG the run happens inside Spark: every purchase
    model is judged on the holdout (model_comparison.csv, one MLflow child run
    each), the chosen one is refitted on the whole period and scores every
    customer (interval columns with [models] interval, parametric draws only;
    per group with [data] group). A Spark run does not evaluate or rank the
    segmentations (it uses the first rules and the first kmeans one), and draws
    no transitions, figures, interval totals or report: use engine = "pandas".
    """
    _run(config, output, tracking_uri)


@main.command()
@click.argument("config", callback=_config_path)
@click.option("--origins", "-k", default=3, show_default=True, type=click.IntRange(min=1),
              help="Number of rolling calibration ends.")  # fmt: skip
@click.option("--step", "step_days", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Days between origins (default: holdout / origins, whole periods).")  # fmt: skip
@click.option("--migration-days", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Horizon of the segment-migration forecast (default: the step).")  # fmt: skip
@click.option("--output", "-o", default=None,
              help="Output folder (default: <config output_dir>/backtest).")  # fmt: skip
@click.option("--tracking-uri", default=None, help=_URI_HELP)
@_handle_errors
def backtest(config: str, origins: int, step_days: float | None, migration_days: float | None,
             output: str | None, tracking_uri: str | None) -> None:  # fmt: skip
    """Backtest every purchase model, the naive baseline and gradient boosting at rolling
    origins of CONFIG; write backtest.csv, a figure and MLflow runs.
    """  # noqa: D205
    from rfmml.backtest import run_backtest

    with err.status("backtest") as status:
        result, recorded = run_backtest(
            config, origins, step_days=step_days, migration_days=migration_days,
            output_dir=output, tracking_uri=tracking_uri, progress=status.update,
        )  # fmt: skip
    table = result.table.pivot_table(index=["origin", "model"], columns="metric", values="value")
    out.print(_table(table, title=f"Backtest: {len(result.origins)} origins, holdout "
                     f"{(result.origins[0][1] - result.origins[0][0]).days} days"))  # fmt: skip
    out.print(_table(result.ranks, title="Mean rank over origins and metrics (1 = best)"))
    out.print(f"\n[bold]Champion[/]: {result.champion}")
    for note in result.notes:
        err.print(f"note: {note}")
    out.print(f"\n[bold]Outputs[/] in {recorded['files']['backtest'].parent}/")
    for key, path in recorded["files"].items():
        out.print(f"  {key:<20} {path}")


@main.command()
@click.option("--output", "-o", default="rfmml-output", show_default=True,
              help="Output folder, below the current directory.")  # fmt: skip
@click.option("--tracking-uri", default=None, help=_URI_HELP)
@_handle_errors
def demo(output: str, tracking_uri: str | None) -> None:
    """Run the bundled CDNOW experiment here: features, rule and k-means segments,
    BG/NBD + Gamma-Gamma, the MLflow comparison and batch predictions.
    """  # noqa: D205
    from rfmml.config import load_config

    path = resources.files("rfmml") / "_experiments" / "cdnow.toml"
    with resources.as_file(path) as file:
        cfg = load_config(file)
    _reference_check()
    _run(cfg, str(Path(output) / cfg.name), tracking_uri)


def _reference_check() -> None:
    """Fit both models on the published CDNOW sample and print them beside the papers."""
    from rfmml.data import load_cdnow_summary
    from rfmml.models import BetaGeoNBD, GammaGamma

    summary = load_cdnow_summary()
    bgnbd = BetaGeoNBD().fit(summary)
    gg = GammaGamma().fit(summary[summary["frequency"] > 0])
    rows = [(f"BG/NBD {k}", PUBLISHED_BGNBD[k], float(v)) for k, v in bgnbd.params_.items()]
    rows.append(("BG/NBD log-likelihood", -9582.4, bgnbd.log_likelihood_))
    rows += [
        (f"Gamma-Gamma {k}", PUBLISHED_GAMMA_GAMMA[k], float(v)) for k, v in gg.params_.items()
    ]
    frame = pd.DataFrame(rows, columns=["parameter", "published", "rfmml"]).set_index("parameter")
    out.print(_table(frame, title="Reference check: CDNOW 2,357-customer sample (Fader, Hardie "
                     "& Lee 2005; Hardie note 025)"))  # fmt: skip


@main.command()
@_tx_options
@click.option("--freq", type=click.Choice(["D", "W", "M"]), default="D", show_default=True)
@click.option(
    "--form",
    type=click.Choice(["both", "btyd", "classic"]),
    default="both",
    show_default=True,
    help="BTYD summary, classic RFM table, or both side by side.",
)
@click.option("--output", "-o", default=None, help="Write to a .csv or .parquet file.")
@_handle_errors
def features(freq: str, form: str, output: str | None, **reader: Any) -> None:
    """Per-customer RFM features of a CSV, Parquet or JSON (Lines) TRANSACTIONS file."""
    from rfmml.features import btyd_summary, rfm_table

    if output:
        _refuse_overwrite([reader["transactions"]], [Path(output)])
    tx = _read(reader)
    end, group = reader["observation_end"], reader["group"]
    parts = []
    if form in ("both", "classic"):
        parts.append(rfm_table(tx, observation_end=end, group=group))
    if form in ("both", "btyd"):
        parts.append(btyd_summary(tx, observation_end=end, freq=freq, group=group))
    frame = parts[0] if len(parts) == 1 else parts[0].join(parts[1])
    if output:
        _write(frame, output)
    numeric = frame.select_dtypes("number")
    title = f"{len(frame):,} customers"
    if group is not None:  # one row per customer and group
        n_customers = frame.index.get_level_values("customer_id").nunique()
        title = f"{len(frame):,} rows of customer and {group} ({n_customers:,} customers)"
    _tables_to(output).print(_table(numeric.describe().T, title=title))


# Without amounts, the scorer's M slot holds a spend-free column that R- and F-only
# schemes never read (the scorer always fits three columns).
_NO_SPEND_M = "orders_per_year"


#: ``--scorer FILE`` of ``rfmml segment`` and ``rfmml fit``.
_scorer_option = click.option(
    "--scorer",
    "scorer_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="TOML file of RFMScorer parameters for the rule scheme, e.g. method = "
    '"thresholds" with business thresholds per score (see rfmml.config.load_scorer).',
)


def _rules(scheme: str, spend: bool, scorer_file: str | None = None) -> Any:
    """A rule segmenter; without spend only for schemes that use R and F alone.

    ``scorer_file`` is a TOML file of :class:`~rfmml.segments.RFMScorer`
    parameters (e.g. business thresholds), see :func:`rfmml.config.load_scorer`.
    """
    from rfmml.config import load_scorer
    from rfmml.segments import RFMScorer, RuleSegmenter, load_scheme

    scorer = load_scorer(scorer_file) if scorer_file else RFMScorer()
    if spend:
        return RuleSegmenter(scheme=scheme, scorer=scorer)
    if {"M", "FM"} & set(load_scheme(scheme).axes):
        raise DataError(
            f"scheme {scheme!r} scores spend (M), but the log has no amounts; use an R- and "
            "F-only scheme such as rf_grid, or --kmeans"
        )
    if scorer.monetary_col == "total_spend":  # the M slot must read a column that exists
        scorer = scorer.set_params(monetary_col=_NO_SPEND_M)
    return RuleSegmenter(scheme=scheme, scorer=scorer)


def _segmenter(scheme: str, kmeans: str | None, seed: int, spend: bool = True,
               scorer_file: str | None = None) -> Any:  # fmt: skip
    from rfmml.segments import KMeansSegmenter, RFMScorer

    if kmeans:
        k: Any = kmeans if kmeans == "auto" else int(kmeans)
        if spend:
            return KMeansSegmenter(n_clusters=k, random_state=seed)
        return KMeansSegmenter(
            n_clusters=k, random_state=seed, features=("recency_days", "n_orders"),
            log_features=("n_orders",), value_col="n_orders", scheme="rf_grid",
            scorer=RFMScorer(monetary_col=_NO_SPEND_M),
        )  # fmt: skip
    return _rules(scheme, spend, scorer_file)


def _profile_without_spend(X: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """Segment sizes and mean recency and orders, for logs without amounts."""
    frame = X[["recency_days", "n_orders"]].astype(float).assign(segment=labels.to_numpy())
    profile = frame.groupby("segment", observed=False).agg(
        n_customers=("n_orders", "size"),
        mean_recency_days=("recency_days", "mean"),
        mean_n_orders=("n_orders", "mean"),
    )
    profile.insert(1, "share", profile["n_customers"] / len(X))
    return profile


def _say_no_spend() -> None:
    err.print("no amounts: segments use recency and frequency; spend columns and models are "
              "skipped", soft_wrap=True)  # fmt: skip


@main.command()
@_tx_options
@click.option("--scheme", default="rf_grid", show_default=True,
              help="Rule scheme: rf_grid, rfm11 or a TOML file.")  # fmt: skip
@_scorer_option
@click.option("--kmeans", default=None, help="Use k-means with this k (or 'auto') instead.")
@click.option("--seed", default=0, show_default=True, help="Random seed for k-means.")
@click.option("--output", "-o", default=None, help="Write segments to a .csv or .parquet file.")
@_handle_errors
def segment(scheme: str, scorer_file: str | None, kmeans: str | None, seed: int,
            output: str | None, **reader: Any) -> None:  # fmt: skip
    """Segment the customers of TRANSACTIONS with rules or k-means; print the profile."""
    from rfmml.features import rfm_table
    from rfmml.segments import segment_profile

    if output:
        _refuse_overwrite([reader["transactions"]], [Path(output)])
    tx = _read(reader)
    spend = "amount" in tx.columns
    if not spend:
        _say_no_spend()
    X = rfm_table(tx, observation_end=reader["observation_end"], group=reader["group"])
    seg = _segmenter(scheme, kmeans, seed, spend, scorer_file).fit(X)
    labels = seg.predict(X)
    profile = segment_profile(X, labels) if spend else _profile_without_spend(X, labels)
    _tables_to(output).print(_table(profile, title="Segment profile"))
    if output:
        frame = X.assign(segment=labels.astype(str))
        _write(frame, output)


def _fit_purchase_model(model: Any, summary: Any, name: str, label: str) -> tuple[Any, str]:
    """``model.fit(summary)`` and the one line that tells a degenerate fit ('' if none).

    A degenerate fit's standard-error warning is not repeated: the line says
    when the standard errors are NaN. Other warnings of the fit pass on.
    """
    from rfmml.evaluation.model_choice import degenerate_message
    from rfmml.models import StandardErrorWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(summary)
    flagged = model.degenerate_parameters()
    for item in caught:
        if not (len(flagged) and issubclass(item.category, StandardErrorWarning)):
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    if not len(flagged):
        return model, ""
    others = ", ".join(
        f"--purchase-model {m}" for m in ("bgnbd", "mbgnbd", "pareto_nbd") if m != name
    )
    text = degenerate_message(
        name, model, flagged, "whole log", label,
        penalizer_hint="--penalizer 0.01", model_hint=f"another purchase model ({others})",
    )  # fmt: skip
    return model, text


@main.command()
@_tx_options
@click.option("--freq", type=click.Choice(["D", "W", "M"]), default="W", show_default=True)
@click.option(
    "--purchase-model",
    type=click.Choice(["bgnbd", "mbgnbd", "pareto_nbd"]),
    default="bgnbd",
    show_default=True,
    help="Purchase model to fit (rfmml run compares them on a holdout).",
)
@click.option("--penalizer", default=0.0, show_default=True, help="L2 penalty of both models.")
@click.option(
    "--scheme",
    default="rf_grid",
    show_default=True,
    help="Rule scheme saved with the models, so predict writes segment lists.",
)
@_scorer_option
@click.option(
    "--horizon",
    default=52,
    show_default=True,
    help="Periods of --freq for expected purchases and CLV in predict.",
)
@click.option(
    "--models-dir",
    default="models",
    show_default=True,
    help="Where the scoring pipeline (pipeline.json, purchase_model.json, ...) goes.",
)
@_handle_errors
def fit(freq: str, purchase_model: str, penalizer: float, scheme: str, scorer_file: str | None,
        horizon: int, models_dir: str, **reader: Any) -> None:  # fmt: skip
    """Fit a purchase model and Gamma-Gamma (and a rule scheme) to TRANSACTIONS; save a
    scoring pipeline.

    The folder it writes is what ``rfmml predict --model`` takes.
    """  # noqa: D205
    from rfmml.campaign import ScoringPipeline
    from rfmml.campaign.streaming import fit_rows, fit_rule_segmenter
    from rfmml.config import PURCHASE_MODEL_LABELS, PURCHASE_MODELS
    from rfmml.features import customer_features
    from rfmml.features.combined import customer_features_table
    from rfmml.models import GammaGamma

    _loaded()
    log, _ = _scan(reader)
    try:
        spend = "amount" in log.columns
        end, group = reader["observation_end"], reader["group"]
        rules = _rules(scheme, spend, scorer_file)
        model = PURCHASE_MODELS[purchase_model](penalizer=penalizer)
        gg = GammaGamma(penalizer=penalizer, zero_spend="exclude") if spend else None
        if "order_id" in log.columns:  # orders counted per order id: the pandas tables
            features, summary = customer_features(log, end, freq, group)
            rules.fit(features)
            n_customers = len(summary)
            rows = spend_rows = summary
        else:  # the tables stay in DuckDB; the models see their distinct rows with counts
            table = customer_features_table(log, end, freq, group)
            rules = fit_rule_segmenter(rules, table)
            n_customers = table.n_rows
            rows = fit_rows(model, table)
            spend_rows = fit_rows(gg, table) if gg is not None else None
            table.drop()
    finally:
        log.close()
    label = PURCHASE_MODEL_LABELS[purchase_model]
    model, degenerate = _fit_purchase_model(model, rows, purchase_model, label)
    out.print(_table(model.summary_, title=f"{label} ({freq}), log-likelihood "
                     f"{model.log_likelihood_:,.1f}, {n_customers:,} customers"))  # fmt: skip
    if degenerate:
        err.print(Text.assemble(("warning: ", "bold yellow"), degenerate), soft_wrap=True)
    if gg is not None:
        gg.fit(spend_rows)
        title = f"Gamma-Gamma on {gg.n_customers_:,} repeat customers"
        if gg.n_excluded_:
            title += f" ({gg.n_excluded_:,} with zero repeat spend left out)"
        out.print(_table(gg.summary_, title=title))
    else:
        err.print(f"no amounts: Gamma-Gamma (spend model) is skipped; {label} and the rules "
                  "are saved")  # fmt: skip
    folder = Path(models_dir)
    ScoringPipeline(rule_segmenter=rules, purchase_model=model, gamma_gamma=gg, horizon=horizon,
                    freq=freq, group=group).save(folder)  # fmt: skip
    err.print(f"saved the scoring pipeline to {folder}/ (use it with rfmml predict --model)")


@main.command()
@_tx_options
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(),
    help="A scoring pipeline folder (from rfmml fit, or the 'model' folder of a run).",
)
@click.option("--output", "-o", default="rfmml-predictions", show_default=True,
              help="Output folder.")  # fmt: skip
@click.option(
    "--previous",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="An earlier predictions.parquet: also write entered/left lists.",
)
@click.option("--hash-ids", is_flag=True, help="Hash customer ids in the segment lists.")
@click.option("--salt", default=None, help="Salt for --hash-ids.")
@click.option(
    "--interval",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=None,
    help="Level of the _lower/_upper columns (0: none); default: the pipeline's.",
)
@click.option(
    "--engine",
    type=click.Choice(["pandas", "spark"]),
    default="pandas",
    show_default=True,
    help="spark: read a Parquet/CSV file or folder and score inside Spark (partitioned Parquet).",
)
@click.option("--spark-master", default=None, help="Spark master for --engine spark.")
@click.option(
    "--csv/--no-csv",
    "with_csv",
    default=True,
    show_default=True,
    help="Also write predictions.csv (predictions.parquet is always written).",
)
@_handle_errors
def predict(model_dir: str, output: str, previous: str | None, hash_ids: bool,
            salt: str | None, interval: float | None, engine: str, spark_master: str | None,
            with_csv: bool,
            **reader: Any) -> None:  # fmt: skip
    """Score the customers of TRANSACTIONS with a saved pipeline; write predictions and lists."""
    if engine == "spark":
        _predict_spark(model_dir, output, spark_master, reader)
        return
    from rfmml.campaign import (
        ScoringPipeline,
        export_segment_changes,
        export_segment_lists,
        read_predictions,
        scoring_frame,
        write_predictions,
    )
    from rfmml.campaign.lists import LIST_COLUMNS
    from rfmml.campaign.streaming import export_segment_lists_from_file, score_features_table
    from rfmml.data.fingerprint import fingerprint
    from rfmml.data.report import REPORT_FILE as CLEANING_REPORT_FILE
    from rfmml.features import customer_features
    from rfmml.features.combined import customer_features_table

    _loaded()
    # every option is checked before anything is read or written
    if hash_ids and not salt:
        raise ValueError("--hash-ids needs --salt (a secret string shared with the people who "
                         "must match ids); nothing was written")  # fmt: skip
    if salt and not hash_ids:
        raise ValueError("--salt without --hash-ids would write raw ids; add --hash-ids")
    if not (Path(model_dir) / "pipeline.json").is_file():
        raise DataError(
            f"{model_dir!r} holds no pipeline.json; pass the folder written by rfmml fit "
            "--models-dir, or the 'model' folder of an rfmml run"
        )
    target = Path(output)
    formats = ("parquet", "csv") if with_csv else ("parquet",)
    written = [target / f"predictions.{kind}" for kind in (*formats, "meta.json")]
    written.append(target / CLEANING_REPORT_FILE)
    _refuse_overwrite([reader["transactions"]], [target, *written])
    pipeline = ScoringPipeline.load(model_dir)
    if pipeline.group is not None and reader["group"] != pipeline.group:
        raise DataError(
            f"the pipeline in {model_dir!r} scores per customer and {pipeline.group!r} (it was "
            f"fitted with a group column); pass --group {pipeline.group} for the log's "
            f"{pipeline.group!r} column, got --group {reader['group']!r}"
        )
    if interval is not None:
        pipeline.interval = interval
    if previous:  # checked now (its metadata and columns); its list columns read when used
        keys = ["customer_id", *([pipeline.group] if pipeline.group is not None else [])]
        _check_previous(previous, read_predictions, keys)
    with _stages(6) as step:
        step("reading and cleaning the transactions")
        log, cleaning = _scan(reader)
        try:
            if "amount" not in log.columns:
                if pipeline.gamma_gamma is not None:
                    raise DataError(
                        "this pipeline has a spend model (Gamma-Gamma) but the log has no "
                        "amounts; map --amount (or --quantity and --price), or fit a pipeline "
                        "on a log without amounts"
                    )
                _say_no_spend()
            step("fingerprinting the transactions")
            # chunk by chunk: the same fingerprint as of the whole frame, never built
            fingerprints = {
                "transactions": fingerprint(log.iter_pandas()),
                "bgnbd": getattr(pipeline.bgnbd, "training_fingerprint_", None),
                "gamma_gamma": getattr(pipeline.gamma_gamma, "training_fingerprint_", None),
                "model_dir": str(Path(model_dir).resolve()),
            }
            step("features: RFM table and BTYD summary (one pass)")
            end, group = reader["observation_end"], reader["group"]
            if "order_id" in log.columns:  # orders counted per order id: the pandas tables
                frame = scoring_frame(*customer_features(log, end, pipeline.freq, group))
                step(f"scoring and writing {len(frame):,} customers")
                table = pipeline.predict(frame)
                del frame
                paths = write_predictions(table, target, fingerprints=fingerprints,
                                          formats=formats)  # fmt: skip
            else:  # features stay in DuckDB; scored and written a chunk of customers at a time
                features = customer_features_table(log, end, pipeline.freq, group)
                step(f"scoring and writing {features.n_rows:,} customers")
                with step.bar("customers", features.n_rows) as advance:
                    streamed = score_features_table(
                        features, pipeline, target, fingerprints=fingerprints, formats=formats,
                        progress=advance,
                    )  # fmt: skip
                features.drop()
                paths = streamed.paths
                table = None
            step("writing segment lists")
            if table is None and "segment" in streamed.columns:
                export_segment_lists_from_file(paths["parquet"], target / "segments",
                                               hash_ids=hash_ids, salt=salt)  # fmt: skip
                if previous:  # the changes join both runs: read the lists' columns
                    current = _list_columns(paths["parquet"])
                    export_segment_changes(read_predictions(previous, LIST_COLUMNS), current,
                                           target / "changes", hash_ids=hash_ids,
                                           salt=salt)  # fmt: skip
                    del current
            elif table is not None and "segment" in table.columns:
                export_segment_lists(table, target / "segments", hash_ids=hash_ids, salt=salt)
                if previous:
                    export_segment_changes(read_predictions(previous, LIST_COLUMNS), table,
                                           target / "changes", hash_ids=hash_ids,
                                           salt=salt)  # fmt: skip
            from rfmml.report import build_report

            n_scored = len(table) if table is not None else streamed.n_rows
            del table
            cleaning.save(target)
            step("building the report")
            report = build_report(output, transactions=log)  # grouped in DuckDB
        finally:
            log.close()
    for kind, path in paths.items():
        err.print(f"wrote {kind}: {path}")
    out.print(f"scored {n_scored:,} customers into {output}/")
    out.print(f"Report: {report}")


def _predict_spark(model_dir: str, output: str, master: str | None, reader: dict) -> None:
    from rfmml.config import DataConfig
    from rfmml.data import CleaningReport
    from rfmml.spark_run import predict_spark, spark_session

    data = DataConfig(
        source=reader["transactions"], customer=reader["customer"],
        timestamp=reader["timestamp"], amount=reader["amount"],
        timestamp_format=reader.get("timestamp_format"), separator=reader.get("separator"),
        group=reader.get("group"), negative_amounts=reader.get("negative_amounts", "drop"),
        drop_duplicates=bool(reader.get("drop_duplicates")),
        drop_zero_amounts=bool(reader.get("drop_zero_amounts")),
        status=reader.get("status"), exclude_status=reader.get("exclude_status"),
        since=reader.get("since"), until=reader.get("until"),
        normalize_ids=bool(reader.get("normalize_ids")), currency=reader.get("currency"),
        currency_column=reader.get("currency_column"),
    )  # fmt: skip
    for key in ("order", "quantity", "price", "cancellation_prefix", "decimal"):
        if reader.get(key) not in (None, False):
            raise ValueError(f"--{key.replace('_', '-')} is not offered with --engine spark")
    cleaning = CleaningReport()
    with _stages(1) as step:
        step("scoring inside Spark")
        paths = predict_spark(model_dir, reader["transactions"], output,
                              observation_end=reader.get("observation_end"),
                              spark=spark_session(master), data=data, report=cleaning,
                              allow_end_beyond_data=bool(reader.get("allow_end_beyond_data")),
                              )  # fmt: skip
    if "cleaning_report" in paths:
        _print_report(cleaning)
    for kind, path in paths.items():
        err.print(f"wrote {kind}: {path}")


@main.command()
@click.argument("output_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--title", default=None, help="Page title (default: the folder's name).")
@_handle_errors
def report(output_dir: str, title: str | None) -> None:
    """Rebuild OUTPUT_DIR/report.html from the files of a run, demo or predict."""
    from rfmml.report import build_report

    out.print(str(build_report(output_dir, title=title)))


@main.command()
@click.argument("experiment")
@click.option("--tracking-uri", default=None, help=_URI_HELP)
@click.option("--primary", default=None, help="Metric to rank by (default: the run's).")
@click.option("--all-metrics", is_flag=True, help="Show every logged metric, not the key ones.")
@click.option("--output", "-o", default=None, help="Also write the table to a CSV file.")
@_handle_errors
def compare(experiment: str, tracking_uri: str | None, primary: str | None, all_metrics: bool,
            output: str | None) -> None:  # fmt: skip
    """Compare the segmentations of EXPERIMENT's latest run, read back from MLflow."""
    from rfmml.evaluation import KEY_METRICS
    from rfmml.tracking import compare_segmentations

    table = compare_segmentations(experiment, tracking_uri=tracking_uri, primary=primary)
    if output:
        from rfmml._documents import replacing

        with replacing(output) as temporary:
            table.to_csv(temporary)
    metrics = [c for c in table.columns if c not in ("run_id", "kind")]
    wanted = [table.attrs["primary"], "rank", *KEY_METRICS]
    cols = metrics if all_metrics else list(dict.fromkeys(c for c in wanted if c in metrics))
    out.print(_table(table[cols], title=f"{experiment}: ranked by {table.attrs['primary']}"))


@main.command()
@click.argument("new_log", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--state",
    "state_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Customer state file (DuckDB), created on first use.",
)
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Saved models: the 'model' folder of rfmml run/demo, or rfmml fit's folder.",
)
@click.option(
    "--output",
    "-o",
    default=None,
    help="Output folder (default: rfmml-refresh/<date of the last transaction>).",
)
@click.option(
    "--customer",
    default="customer_id",
    show_default=True,
    help="Customer id column (stored in the state; later refreshes reuse it).",
)
@click.option("--timestamp", default="timestamp", show_default=True, help="Purchase time column.")
@click.option("--amount", default="amount", show_default=True, help="Value column ('' for none).")
@click.option("--order", default=None, help="Optional order/invoice id column.")
@click.option(
    "--timestamp-format", default=None, help="strftime format, e.g. %Y%m%d; %s: Unix seconds."
)
@click.option("--dayfirst/--monthfirst", default=None,
              help="Order of NEW_LOG's dates written 01/03/2010 (default: the state's stored "
              "value, else inferred from the column; refused when every date is ambiguous, "
              "as in a day's file of the 1st to 12th). Read options are stored in the state "
              "and reused by later refreshes; one given wins and is stored.")  # fmt: skip
@click.option("--encoding", default=None, help="Text encoding of NEW_LOG (default UTF-8).")
@click.option(
    "--separator",
    default=None,
    help="NEW_LOG's field separator (default: the first of , ; tab | that fits).",
)
@click.option(
    "--decimal",
    default=None,
    help="Decimal mark of NEW_LOG's numbers (default '.'; ',' reads 2,50).",
)
@click.option("--status", default=None,
              help="Optional order state column (e.g. 'Financial Status'), read with "
              "--exclude-status (stored in the state and reused).")  # fmt: skip
@click.option("--exclude-status", default=None,
              help="States of --status that are not purchases, comma-separated (e.g. "
              "refunded,voided): their rows are removed and counted; with --order, their "
              "whole orders (stored in the state and reused).")  # fmt: skip
@click.option("--currency", default=None,
              help="Keep NEW_LOG's rows of this currency (e.g. EUR), counted (stored in the "
              "state and reused).")  # fmt: skip
@click.option("--currency-column", default=None,
              help="Column of the currency codes (default: a column named currency, if any; "
              "stored in the state).")  # fmt: skip
@click.option("--normalize-ids", is_flag=True, default=None,
              help="Lower-case text customer ids (Ann@x.com = ann@x.com), counted (stored in "
              "the state and reused).")  # fmt: skip
@click.option(
    "--since",
    default=None,
    help="Drop NEW_LOG's rows dated before this date, counted (this batch only).",
)
@click.option(
    "--until",
    default=None,
    help="Drop NEW_LOG's rows dated after this date, counted (this batch only).",
)
@click.option(
    "--negative-amounts",
    type=click.Choice(["drop", "net", "error"]),
    default="drop",
    show_default=True,
    help="Returns: drop them, net them against the customer's purchase (also across "
    "batches), or stop (read when the state is created).",
)
@click.option("--drop-duplicates", is_flag=True,
              help=_DROP_DUPLICATES_HELP[:-1] + "; also rows stored by an earlier batch (read "
              "when the state is created).")  # fmt: skip
@click.option("--drop-zero-amounts", is_flag=True,
              help=_DROP_ZERO_HELP[:-1] + " (read when the state is created).")  # fmt: skip
@click.option(
    "--segment-tolerance",
    default=0.2,
    show_default=True,
    help="Advise a refit when a larger share of customers changed segment.",
)
@click.option(
    "--purchase-tolerance",
    default=0.2,
    show_default=True,
    help="Advise a refit when actual/predicted purchases is further than this from 1.",
)
@click.option("--tracking-uri", default=None, help=_URI_HELP)
@_handle_errors
def refresh(new_log: str, state_path: str, model_dir: str, output: str | None, customer: str,
            timestamp: str, amount: str, order: str | None, timestamp_format: str | None,
            dayfirst: bool | None, encoding: str | None, separator: str | None,
            decimal: str | None, status: str | None, exclude_status: str | None,
            currency: str | None, currency_column: str | None, normalize_ids: bool | None,
            since: str | None, until: str | None, negative_amounts: str, drop_duplicates: bool,
            drop_zero_amounts: bool, segment_tolerance: float,
            purchase_tolerance: float, tracking_uri: str | None) -> None:  # fmt: skip
    """Add NEW_LOG to the customer state, rescore with saved models (no refit), write
    predictions and entered/left lists, append the segment history, check for drift.

    The state remembers the column options and --dayfirst/--monthfirst, --encoding,
    --separator, --decimal, --status, --exclude-status of its last batch: later
    refreshes of files of the same shape can leave them out. An option given explicitly
    wins, is kept for the next refreshes, and a line on stderr says what changed.
    """  # noqa: D205
    from click.core import ParameterSource

    from rfmml.refresh import refresh as run_refresh

    # only the options given on the command line: the state keeps the others (on
    # creation, the defaults below are CustomerState.create's own)
    context = click.get_current_context()
    options = {name: value for name, value in [
        ("customer", customer), ("timestamp", timestamp), ("amount", amount or None),
        ("order", order), ("timestamp_format", timestamp_format),
        ("negative_amounts", negative_amounts), ("drop_duplicates", drop_duplicates),
        ("drop_zero_amounts", drop_zero_amounts),
    ] if context.get_parameter_source(name) is not ParameterSource.DEFAULT}  # fmt: skip
    reading = {"dayfirst": dayfirst, "encoding": encoding, "separator": separator,
               "decimal": decimal, "status": status, "exclude_status": exclude_status,
               "currency": currency, "currency_column": currency_column,
               "normalize_ids": normalize_ids or None, "since": since,
               "until": until}  # fmt: skip
    result = run_refresh(new_log, state_path, model_dir, output, create_options=options,
                         read_options=reading, tracking_uri=tracking_uri,
                         segment_tolerance=segment_tolerance,
                         purchase_tolerance=purchase_tolerance)  # fmt: skip
    update = result.update
    for note in result.notes:
        err.print(Text(note), soft_wrap=True)
    if update.applied:
        _print_report(update.report)
        err.print(f"added {update.rows_added:,} rows ({update.late_rows:,} late), "
                  f"{update.customers_touched:,} customers touched")  # fmt: skip
    else:
        err.print("this batch was applied before: the state is unchanged")
    if not result.movements.empty:
        out.print(_table(result.movements, title=f"Segments as of {result.observation_end}"))
    out.print(f"scored {len(result.predictions):,} customers into {result.output_dir}/")
    out.print(f"Report: {result.files['report']}")
    style = "bold yellow" if result.drift.refit_advised else "green"
    out.print(Text(result.drift.reason, style=style))


if __name__ == "__main__":  # pragma: no cover
    main()
