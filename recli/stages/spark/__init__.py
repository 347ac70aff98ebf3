"""The Spark engine: ``prep``, ``train --model als`` and ``recommend --all-users`` on Apache Spark.

The engine chooses which stage code runs (these modules instead of the local stages); it is
not a compute backend. PySpark is imported only here, and only when ``--engine spark`` is
given. Data crosses between Python and the JVM as Arrow tables
(``createDataFrame(pyarrow.Table)`` and ``DataFrame.toArrow()``), never through pandas.
"""
