"""``python -m bench [--quick] [...]``: run the benchmark, print the table and targets,
write ``bench/out/results.json`` and ``bench/out/latency.png``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from bench.command import start_command
from bench.config import parse_args
from bench.runner import print_report, run

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    start_command()
    logger.info("benchmark: modes %s, rates %s, %s", ",".join(cfg.modes),
                ",".join(map(str, cfg.rates)), "quick" if cfg.quick else "full")
    results = run(cfg)
    print_report(results)
    logger.info("wrote %s and %s", cfg.out_dir / "results.json", cfg.out_dir / "latency.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
