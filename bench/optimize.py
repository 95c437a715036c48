"""`make bench`, optimization part: ORT FP32/INT8/INT4 vs PyTorch eager on the example models.

Writes OUT/optimize.json and OUT/optimize.md (see slipway.bench.optimize) and prints the markdown.
"""

from slipway.bench.cli import simple_main

if __name__ == "__main__":
    simple_main(
        "optimize",
        description="ORT FP32/INT8/INT4 vs PyTorch eager on the example models.",
        quick_help="tiny warm-up/rounds/iterations: checks the plumbing, not speed",
    )
