"""The visitor's asset client: fetch a booth's manifest, download what the disk
cache lacks, verify every chunk's BLAKE3 hash, rebuild the assets.

Plain Python (blake3 and the standard library), no Django: it ships to visitors.
"""

from .cache import ChunkCache
from .fetch import AssetClient, ClientError, FetchReport, PermissionDenied

__all__ = ["AssetClient", "ChunkCache", "ClientError", "FetchReport", "PermissionDenied"]
