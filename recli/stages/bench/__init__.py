"""``recli bench``: speed, memory and quality of recli's models on the user's own data,
side by side with peer libraries.

* :mod:`.spec`: the request and its configuration matrix;
* :mod:`.data`: the data sets, prepared once (seeded holdout) for every child;
* :mod:`.child`: one measure in a fresh process (peak memory and caches clean);
* :mod:`.peers`: implicit and LightFM at the same boundary as recli;
* :mod:`.machine`: load guard, environment, GEMM and copy roofs, flop and byte counts;
* :mod:`.runner`: interleaved runs reduced to one row per configuration × measure;
* :mod:`.report`: the stable output schema and its csv / json / markdown forms;
* :mod:`.plots`: PNG charts; :mod:`.parity`: ``--check parity`` across backends.
"""

from recli.stages.bench.runner import BenchResult, bench
from recli.stages.bench.spec import BenchRequest

__all__ = ["BenchRequest", "BenchResult", "bench"]
