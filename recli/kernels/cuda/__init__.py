"""Custom GPU kernels written with ``numba.cuda``: the SGD samplers of ``bpr``, ``warp`` and
``mf`` (:mod:`.sgd`), a per-row top-k with seen items masked (:mod:`.topk`) and a batched
conjugate-gradient ALS row solve (:mod:`.cg`).

They are launched on CuPy arrays (through ``__cuda_array_interface__``) by the
array-module orchestration (:mod:`recli.kernels.sgd_xp`), and in CI on NumPy arrays by
Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before Numba is imported), where
each is compared with the slow NumPy reference its Numba CPU twin is tested against.
Importing a module here imports ``numba.cuda``; nothing else in recli does.
"""
