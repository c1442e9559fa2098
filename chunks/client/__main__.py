"""`python -m chunks.client fetch --url URL --booth N --cache DIR --out DIR`"""

import argparse
import sys

from .cache import ChunkCache, CorruptChunk
from .fetch import AssetClient, ClientError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chunks.client",
        description="Fetch a booth's assets into a folder, through a disk cache.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download a booth's assets")
    fetch.add_argument("--url", required=True, help="the market, e.g. http://127.0.0.1:8000")
    fetch.add_argument("--booth", required=True, help="booth id")
    fetch.add_argument("--cache", required=True, help="chunk cache folder (kept between runs)")
    fetch.add_argument("--out", required=True, help="folder to write the assets to")
    fetch.add_argument(
        "--header", action="append", default=[], help="extra request header, 'Name: value'"
    )
    fetch.add_argument("--workers", type=int, default=8, help="concurrent downloads")
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    client = AssetClient(
        args.url, headers={k.strip(): v.strip() for k, v in headers.items()}, workers=args.workers
    )
    try:
        report = client.fetch_booth(args.booth, ChunkCache(args.cache), args.out, progress=_bar)
    except (ClientError, CorruptChunk) as exc:
        print(f"\nfetch failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"\n{len(report.assets)} assets in {args.out}: {report.chunks_downloaded} chunks downloaded"
        f" ({report.bytes_downloaded:,} bytes), {report.chunks_cached} from the cache"
    )
    return 0


def _bar(done: int, total: int, downloaded: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} chunks, {downloaded:,} bytes",
        end="",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
