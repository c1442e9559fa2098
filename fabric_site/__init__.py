"""Project package: settings, ASGI entry point, URLs and the Celery app."""

import os

# One BLAS thread per process, set before anything loads numpy. The market's parallelism is
# its processes (web, zone workers); a second OpenBLAS thread in the web process spun on the
# other core for every gateway flush's small matrix product and burnt 0.7 of this machine's
# 2 cores under 1,000 visitors, doubling the CPU a frame costs (docs/performance.md).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

# Imported here so that shared tasks bind to this app whenever Django starts.
from .celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
