"""Choosing the engine and getting a quiet SparkSession.

``--engine spark`` with ``--spark-master`` (default ``local[*]``) and any number of
``--spark-conf key=value``. Inside ``spark-submit`` (recognised by the JVM gateway it hands
to Python) or any program that already started a session, recli uses that session as
given and ignores both options. A new session is
quiet: no console progress bar, log level ERROR from the first line on (a log4j2 file
recli writes to its cache folder), and for a local master the driver binds to 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import warnings
from dataclasses import dataclass, field
from typing import Any

from recli.errors import ConfigError, EnvironmentFault

ENGINES = ("local", "spark")
INSTALL_HINT = "install the Spark extra: pip install 'recli[spark]' (PySpark 4 and PyArrow; Spark needs Java 17+)"
# Everything at ERROR; the org.apache.spark logger is named too, because Spark prints
# "Setting default log level" unless its own logger's configured level equals the root's.
_LOG4J = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
""" + "".join(f"logger.l{n}.name = {pkg}\nlogger.l{n}.level = error\n" for n, pkg in enumerate(
    ("org.apache.spark", "org.apache.hadoop", "org.sparkproject", "org.apache.parquet", "dev.ludovic.netlib", "io.netty")))


@dataclass(frozen=True)
class SparkSettings:
    """Where Spark runs: the master URL and extra ``spark.*`` settings."""

    master: str = "local[*]"
    conf: dict[str, str] = field(default_factory=dict)


def check_engine(engine: str, device: str = "cpu") -> bool:
    """``True`` for ``--engine spark``; refuses an unknown engine and Spark with ``--device gpu``."""
    if engine not in ENGINES:
        raise ConfigError(f"--engine {engine!r} is not one of: {', '.join(ENGINES)}",
                          hint="use --engine local (this machine) or --engine spark")
    if engine == "spark" and device != "cpu":
        raise ConfigError(f"--engine spark runs on the Spark cluster's executors; --device {device} does not apply",
                          hint="drop --device, or use --engine local --device gpu")
    return engine == "spark"


def parse_conf(items: list[str] | None) -> dict[str, str]:
    """``["spark.executor.memory=8g", ...]`` → ``{"spark.executor.memory": "8g"}``."""
    out: dict[str, str] = {}
    for text in items or []:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--spark-conf {text!r} is not key=value", hint="e.g. --spark-conf spark.executor.memory=8g")
        out[key.strip()] = value.strip()
    return out


def settings(master: str | None, conf: list[str] | None) -> SparkSettings:
    return SparkSettings(master or "local[*]", parse_conf(conf))


def require_spark() -> None:
    """PySpark, PyArrow and a Java runtime are present, else one error with the install hint."""
    # PySpark warns about the pandas version on import; recli hands data over as Arrow, never pandas
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"pyspark\.")
    try:
        import pyarrow  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"--engine spark needs {exc.name or 'pyspark'}, which is not installed", hint=INSTALL_HINT) from None
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise ConfigError("--engine spark needs a Java runtime (17 or newer), and none was found"
                          + (f" (JAVA_HOME={home})" if home else " on PATH"),
                          hint="install Java 17+ (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME")


def check_master(master: str, timeout: float = 5.0) -> None:
    """A standalone master (``spark://host:port[,host:port]``) must accept a TCP connection;
    Spark itself would retry for minutes before giving up."""
    if not master.startswith("spark://"):
        return
    for hostport in master[len("spark://"):].split(","):
        host, _, port = hostport.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return
        except (OSError, ValueError):
            continue
    raise ConfigError(f"cannot reach the Spark master {master}",
                      hint="check the host and port (the master's web UI shows its spark:// URL), "
                           "or use --spark-master 'local[*]' to run on this machine")


def _log4j_file() -> str:
    from recli import user_cache_dir

    path = user_cache_dir() / "spark-log4j2.properties"
    if not path.exists() or path.read_text(encoding="utf-8") != _LOG4J:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_LOG4J, encoding="utf-8")
    return str(path)


def session(config: SparkSettings) -> Any:
    """The active SparkSession (inside ``spark-submit``), else a new quiet one for ``config``."""
    require_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None and "PYSPARK_GATEWAY_PORT" in os.environ:
        # inside spark-submit (its JVM is already up): the submit's master and settings decide
        active = SparkSession.builder.getOrCreate()
    if active is not None:
        return active
    check_master(config.master)
    builder = SparkSession.builder.master(config.master).appName("recli")
    quiet = {"spark.ui.showConsoleProgress": "false",
             "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{_log4j_file()}"}
    if config.master.startswith("local"):
        quiet.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1", "spark.ui.enabled": "false"})
    for key, value in {**quiet, **config.conf}.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM's reason, whatever its class: Py4J, Runtime, PySpark errors
        raise EnvironmentFault(f"cannot start Spark on {config.master}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                               hint="check --spark-master and --spark-conf (rerun with --debug for Spark's trace)",
                               exit_code=2) from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark

